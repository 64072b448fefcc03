"""A few-forward 1-D maximiser for PSNR against a model's control (the optimal-input-level search).

Search (`maximise`): PSNR against the control is unimodal and smooth for these models, so
1. `probes` evenly spaced controls over the bracket (batched through `model.sweep` where a model has
   it: HyperRes runs its head once and the levels' generated networks as one grouped computation); if their PSNRs are not unimodal (a rise after a fall beyond `eps` dB),
   fall back to the dense grid of `grid` points over the bracket;
2. otherwise refine between the best probe's neighbours by successive parabolic interpolation,
   with a golden-section step whenever the parabola is unusable, until the parabola's vertex lies
   within half a grid step of the best point while the bracket spans at most 4 grid steps (in a
   wider bracket a vertex that close is checked by a point one grid step towards it: skewed curves
   fool wide parabolas), or the bracket is narrower than one grid step.
The grid step is (hi - lo) / (grid - 1): the resolution a dense `grid`-point search would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GOLDEN = 0.381966  # 2 - golden ratio


@dataclass
class Search:
    best: float
    value: float
    forwards: int
    method: str  # "parabolic" or "grid" (the fallback)
    points: dict  # control -> PSNR of every forward


def is_unimodal(values, eps: float) -> bool:
    """Rises (up to eps noise) to its maximum, then falls (up to eps noise)."""
    v = list(values)
    i = int(np.argmax(v))
    rising = all(v[j + 1] >= v[j] - eps for j in range(i))
    falling = all(v[j + 1] <= v[j] + eps for j in range(i, len(v) - 1))
    return rising and falling


def parabola_vertex(a, fa, b, fb, c, fc) -> float | None:
    """Vertex of the parabola through three points, or None when they are collinear."""
    p = (b - a) ** 2 * (fb - fc) - (b - c) ** 2 * (fb - fa)
    q = (b - a) * (fb - fc) - (b - c) * (fb - fa)
    return None if q == 0 else b - 0.5 * p / q


def maximise(f: Callable[[list[float]], list[float]], lo: float, hi: float, grid: int = 41, probes: int = 5,
             eps: float = 0.005, max_refine: int = 20) -> Search:
    """Maximise f over [lo, hi]; f takes a list of points and returns their values (one batch)."""
    points: dict[float, float] = {}

    def ask(xs):
        new = [x for x in xs if x not in points]
        if new:
            points.update(zip(new, f(new)))
        return [points[x] for x in xs]

    if hi - lo <= 0:
        return Search(lo, ask([lo])[0], 1, "degenerate", points)
    step = (hi - lo) / (grid - 1)
    grid_xs = [float(x) for x in np.linspace(lo, hi, grid)]
    xs = [grid_xs[i] for i in np.round(np.linspace(0, grid - 1, probes)).astype(int)]  # probes are grid points
    vs = ask(xs)
    if not is_unimodal(vs, eps):
        ask(grid_xs)
        best = max(grid_xs, key=lambda x: points[x])
        return Search(best, points[best], len(points), "grid", points)
    i = int(np.argmax(vs))
    left, mid, right = xs[max(i - 1, 0)], xs[i], xs[min(i + 1, len(xs) - 1)]
    for _ in range(max_refine):
        if right - left <= step:
            break
        u = None
        if left < mid < right:
            u = parabola_vertex(left, points[left], mid, points[mid], right, points[right])
            if u is not None and abs(u - mid) <= step / 2:
                if right - left <= 4 * step:
                    break  # a parabola through close points puts the peak within half a grid step of the best point
                # a wide bracket's parabola is fooled by skewed curves: test one grid step towards its vertex
                u = mid + (step if (u > mid or (u == mid and right - mid >= mid - left)) else -step)
        if u is None or not left < u < right:  # golden-section step into the larger side
            u = mid + GOLDEN * (right - mid) if right - mid >= mid - left else mid - GOLDEN * (mid - left)
        fu = ask([u])[0]
        if fu > points[mid]:
            left, right = (mid, right) if u > mid else (left, mid)
            mid = u
        elif u > mid:
            right = u
        else:
            left = u
    best = max(points, key=points.get)
    return Search(best, points[best], len(points), "parabolic", points)
