"""Saving matplotlib figures the way every report does: PNG and PDF, written atomically, after a check that
no two texts of the figure overlap (titles, axis labels, tick labels, legends)."""

import io
import warnings
from itertools import combinations
from pathlib import Path

from bench.common.atomic import atomic_write_bytes

ENTRY_COLOURS = {"hyperres": "tab:red", "perlevel": "tab:blue"}  # the main comparison, alike in every figure
SPARE_COLOURS = ["tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "black"]


class FigureLayoutWarning(UserWarning):
    """Texts of a figure overlap (the test suite turns this into an error)."""


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (reports run on machines without a display);
    imported on first use so that commands without figures do not pay for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _drawn(labels, limits, coordinate: int) -> list:
    """The tick labels inside the view limits: matplotlib keeps labels of ticks outside them, undrawn."""
    lo, hi = sorted(limits)
    return [t for t in labels if lo <= t.get_position()[coordinate] <= hi]


def _texts(fig) -> list[tuple[str, object]]:
    """(name, artist) of every visible, non-empty text of the figure; a legend counts as one box."""
    found = [("suptitle", fig._suptitle)] if fig._suptitle is not None else []
    found += [(f"figure text {t.get_text()!r}", t) for t in fig.texts if t is not fig._suptitle]
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        found += [(f"axes {i} title", t) for t in (ax.title, ax._left_title, ax._right_title)]
        found += [(f"axes {i} x label", ax.xaxis.label), (f"axes {i} y label", ax.yaxis.label)]
        found += [(f"axes {i} x tick {t.get_text()!r}", t) for t in _drawn(ax.get_xticklabels(), ax.get_xlim(), 0)]
        found += [(f"axes {i} y tick {t.get_text()!r}", t) for t in _drawn(ax.get_yticklabels(), ax.get_ylim(), 1)]
        if ax.get_legend() is not None:
            found.append((f"axes {i} legend", ax.get_legend()))
    return [(name, a) for name, a in found if a.get_visible() and (not hasattr(a, "get_text") or a.get_text().strip())]


def text_overlaps(fig, tolerance_px: float = 1.0) -> list[str]:
    """Pairs of texts whose drawn boxes overlap by more than `tolerance_px` in both directions."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(name, a.get_window_extent(renderer)) for name, a in _texts(fig)]
    clashes = []
    for (na, a), (nb, b) in combinations(boxes, 2):
        dx = min(a.x1, b.x1) - max(a.x0, b.x0)
        dy = min(a.y1, b.y1) - max(a.y0, b.y0)
        if dx > tolerance_px and dy > tolerance_px:
            clashes.append(f"{na} / {nb}")
    return clashes


def save_figure(fig, base: Path) -> list[Path]:
    """Write `fig` as base.png and base.pdf (atomic), close it, return the paths. Overlapping texts are
    reported as a FigureLayoutWarning (the figure is still written)."""
    import matplotlib.pyplot as plt

    clashes = text_overlaps(fig)
    if clashes:
        warnings.warn(FigureLayoutWarning(f"{Path(base).name}: overlapping texts: {'; '.join(clashes[:5])}"), stacklevel=2)
    written = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        # no CreationDate in the PDF: a regenerated figure with the same content keeps the same bytes
        fig.savefig(buf, format=ext, dpi=150, metadata={"CreationDate": None} if ext == "pdf" else None)
        path = Path(base).with_suffix("." + ext)
        atomic_write_bytes(path, buf.getvalue())
        written.append(path)
    plt.close(fig)
    return written
