"""Pieces every stage uses: user-facing errors, progress bars, atomic file writes, checkpoints, the allocator setting."""
