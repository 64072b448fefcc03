"""Whether a file's bytes are in the kernel's page cache, and asking the kernel to drop them.

Loading a network from disk costs a read from the device only when the file is not cached: the
efficiency table times the per-level bank's switch both ways and says which. mincore(2) on a private
mapping of the file reports which of its pages are resident (without reading them);
posix_fadvise(POSIX_FADV_DONTNEED) drops clean cached pages (dirty ones are written first by the
fsync before it). Both are Linux/POSIX calls: elsewhere the answers are None and nothing is dropped.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path


def cached_fraction(path: Path) -> float | None:
    """The fraction of the file's pages in the page cache, None where mincore is not available."""
    size = os.path.getsize(path)
    if size == 0:
        return 1.0
    try:
        mincore = ctypes.CDLL(None, use_errno=True).mincore
    except (OSError, AttributeError, TypeError):
        return None
    pages = -(-size // mmap.PAGESIZE)
    vec = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as mm:  # copy-on-write: a writable buffer for ctypes
        buf = ctypes.c_char.from_buffer(mm)
        try:
            rc = mincore(ctypes.c_void_p(ctypes.addressof(buf)), ctypes.c_size_t(size), vec)
        finally:
            del buf  # the mapping cannot close while ctypes holds it
    return None if rc else sum(v & 1 for v in vec) / pages


def drop_from_cache(path: Path) -> bool:
    """Ask the kernel to drop the file's cached pages; False where posix_fadvise is not available."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # dirty pages are not dropped
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (ext4, xfs, tmpfs, ...) from /proc/mounts, '?' elsewhere."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "?"
    real = str(Path(path).resolve())
    best = max((m for m in mounts if real == m[0] or real.startswith(m[0].rstrip("/") + "/")), key=lambda m: len(m[0]), default=None)
    return best[1] if best else "?"
