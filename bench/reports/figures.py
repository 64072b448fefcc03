"""Saving matplotlib figures the way every report does: PNG and PDF, written atomically."""

import io
from pathlib import Path

from bench.common.atomic import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (reports run on machines without a display);
    imported on first use so that commands without figures do not pay for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, base: Path) -> list[Path]:
    """Write `fig` as base.png and base.pdf (atomic), close it, return the paths."""
    import matplotlib.pyplot as plt

    written = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=150)
        path = Path(base).with_suffix("." + ext)
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    plt.close(fig)
    return written
