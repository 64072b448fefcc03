"""A confidence interval for a PSNR gap between two entries that counts both the test images and the training seeds.

A claim compares entry A with entry B on the same test images. Each entry was trained with one or more
seeds; `a[s, i]` is the PSNR of A's seed `s` on image `i` (already averaged over the claim's levels), and
`b[t, i]` likewise for B. The model behind the interval is

    a[s, i] = muA + alpha_s + u_i + e[s, i]        b[t, i] = muB + beta_t + v_i + f[t, i]

with seed effects alpha ~ (0, sA²) and beta ~ (0, sB²) (another training run lands elsewhere), image
effects u_i, v_i (the images are a sample of the image population; only the paired difference u_i - v_i
matters, and its variance sD² is usually far below that of u_i itself, since hard images are hard for
both entries) and seed × image interactions e ~ (0, sE²), f ~ (0, sF²). The estimand is muA - muB, the
gap expected over a fresh training run of each entry and a fresh image of the population.

The estimator is the difference of grand means, D = mean(a) - mean(b), whose variance is

    Var(D) = sA²/nA + sB²/nB + sD²/n + sE²/(n·nA) + sF²/(n·nB).

Three observable mean squares estimate it (n images, nA and nB seeds):

* S2_A, the variance over seeds of A's per-seed mean over images: E[S2_A] = sA² + sE²/n
  (the image effects cancel, every seed saw the same images);
* S2_d, the variance over images of the paired difference of seed-averaged PSNRs:
  E[S2_d] = sD² + sE²/nA + sF²/nB;
* MSres_A, the two-way (seed × image) residual mean square of A: E[MSres_A] = sE².

S2_A/nA + S2_B/nB + S2_d/n counts the interaction twice, once through each seed mean and once through
each image difference, so the two-way residual takes one copy out:

    Var(D) = (S2_A - MSres_A/n)/nA + (S2_B - MSres_B/n)/nB + S2_d/n,

unbiased term by term. Each entry's seed component, (S2_A - MSres_A/n)/nA, estimates sA²/nA alone and
is floored at 0 (a negative variance estimate says the seeds differ no more than the interaction
explains); the image component S2_d/n keeps the interaction, so the floor never drops it.

Degrees of freedom come from Welch–Satterthwaite over the independent mean squares that make up Var(D):
S2_A/nA (nA - 1 df) less MSres_A/(n·nA) ((nA - 1)(n - 1) df), the same for B, and S2_d/n (n - 1 df);
an entry whose seed component was floored to 0 adds no terms. The interval is D ± t(df) · sqrt(Var(D)),
with the Student t quantile computed here (scipy is no dependency of hyperbench). The residual terms
have many df and barely count, but S2_A enters with its full size, not net of the interaction: the
uncertainty of a difference of mean squares is that of both. Plain Welch over the net components with
(nA - 1, nB - 1, n - 1) df undercovers when the interaction is large next to the seed spread (93.5 %
in simulation with interaction sd 0.5 dB, seed sd 0.08 dB, 68 images, 3+3 seeds; this choice 96.0 %).
Satterthwaite's estimated df err low with few df, so the interval leans conservative: it covered 95.4 %
with 68 images and 3+3 seeds, 96.5 % with 5 images, and 94.6 % with one seed each and the seed spread
borrowed from another 3+3 pair (100,000 or 40,000 simulated draws; the designs of tests/test_intervals.py).

An entry with a single seed cannot measure its own seed spread. Its seed variance may be borrowed from
the same task's multi-seed entries (`pooled_seed_variance`), entering with the df it was measured
with; otherwise the seed component is 0 and the interval covers the images only ("training variance
unmeasured"). With one seed the image component holds that entry's whole interaction, which is why the
borrowed variance is the seed effect net of the interaction (sA², not sA² + sE²/n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
MEASURED, BORROWED, UNMEASURED = "measured", "borrowed", "unmeasured"
MAX_SEEDS = 50  # the advice stops here: more training runs than this per entry is no realistic remedy
MAX_IMAGE_FACTOR = 10  # ...and at ten times the images of the evaluation set


# --- Student t quantile --------------------------------------------------------------------------------

def _beta_cf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), converging for x < (a+1)/(a+b+2)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _beta_inc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b  # the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) keeps the fraction convergent


def _t_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0: the upper tail of Student's t is half an incomplete beta."""
    return 0.5 * _beta_inc(df / 2.0, 0.5, df / (df + t * t))


def _t_density(t: float, df: float) -> float:
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                    - (df + 1) / 2 * math.log1p(t * t / df))


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df (real, > 0) degrees of freedom, accurate to ~1e-10.

    Newton's method on the tail probability, kept inside a bracket that bisection falls back on (the
    heavy tails at df near 1 would otherwise let a Newton step overshoot)."""
    if not 0.0 < p < 1.0 or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    if df > 1e7 or math.isinf(df):
        return NormalDist().inv_cdf(p)
    q, z = 1.0 - p, NormalDist().inv_cdf(p)
    if df >= 3:  # start from the Cornish–Fisher expansion around the normal quantile: Newton then needs 2-3 steps
        lo, hi = 0.0, math.inf
        t = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2) \
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
    else:
        lo, hi = 0.0, max(1.0, z)
        while _t_tail(hi, df) > q:  # at df well below 1 the quantile runs to astronomical values
            lo, hi = hi, 2.0 * hi
        t = hi
    for _ in range(400):
        tail = _t_tail(t, df)
        lo, hi = (t, hi) if tail > q else (lo, t)
        density = _t_density(t, df)
        new = t + (tail - q) / density if density > 0 else math.nan
        if abs(new - t) <= 1e-12 * (1.0 + t):
            return new
        if not lo < new < hi:  # bisect instead, geometrically where the bracket spans orders of magnitude
            new = 2.0 * t if math.isinf(hi) else math.sqrt(lo * hi) if lo > 0 and hi > 4 * lo else 0.5 * (lo + hi)
        t = new
    return t


# --- the interval ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Components:
    """The parts of Var(D): each entry's seed spread and the paired image spread (which holds the interaction)."""
    seed_a: float
    seed_b: float
    images: float


@dataclass(frozen=True)
class _Spread:
    """Per-unit variances behind an interval, for projecting how it narrows with more seeds or images."""
    seed_var: tuple[float, float]  # variance of one seed's mean, net of interaction (0 where unmeasured)
    seed_df: tuple[float, float]  # the df it rests on now (0 where unmeasured)
    shared: bool  # both entries borrowed the same estimate
    interaction: tuple[float, float]  # MSres per entry (0 where one seed cannot measure it)
    image_var: float  # per-image paired variance net of the measured interaction


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    df: float
    se: float
    level: float
    components: Components
    n_seeds_a: int
    n_seeds_b: int
    n_images: int
    seed_source: tuple[str, str]  # per entry: 'measured', 'borrowed' or 'unmeasured'
    spread: _Spread = field(repr=False, compare=False)

    @property
    def half_width(self) -> float:
        return 0.5 * (self.high - self.low)

    @property
    def note(self) -> str:
        """What the reader must know about the seed part: '' when both entries measured their own."""
        if UNMEASURED in self.seed_source:
            return "training variance unmeasured"
        if BORROWED in self.seed_source:
            return "seed spread borrowed"
        return ""


def _matrix(x, name: str) -> np.ndarray:
    m = np.asarray(x, dtype=float)
    if m.ndim == 1:  # a single seed given as a row of per-image values
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] < 1:
        raise ValueError(f"{name} must be a (seeds, images) matrix, got shape {np.shape(x)}")
    if m.shape[1] < 2:
        raise ValueError(f"{name} has {m.shape[1]} image(s): the image spread needs at least 2 images")
    if not np.isfinite(m).all():
        raise ValueError(f"{name} holds non-finite PSNR values")
    return m


def _seed_mean_squares(m: np.ndarray) -> tuple[float, float]:
    """(S2, MSres) of one entry with two or more seeds: the variance of its per-seed means over images and
    its two-way seed × image residual mean square."""
    s, n = m.shape
    seed_means = m.mean(axis=1)
    resid = m - seed_means[:, None] - m.mean(axis=0) + seed_means.mean()
    return float(seed_means.var(ddof=1)), float(np.square(resid).sum() / ((s - 1) * (n - 1)))


def _satterthwaite(terms: list[tuple[float, float]]) -> float:
    """Welch–Satterthwaite df of a sum of independent scaled mean squares, given as (value, df) pairs."""
    total = sum(v for v, _ in terms)
    denom = sum(v * v / df for v, df in terms if df > 0)
    return total * total / denom if denom > 0 and total > 0 else math.inf


def pooled_seed_variance(matrices) -> tuple[float, float]:
    """The seed variance of one seed's mean PSNR, pooled over several multi-seed entries: (variance, df).

    Each entry contributes S2 - MSres/n (its variance of per-seed means less the seed × image
    interaction those means carry; see the module docstring), weighted by its nk - 1 df, as in a pooled
    two-sample variance. Net of the interaction it estimates sA² itself, which does not depend on the
    number of images, and is what a single-seed entry's `borrowed` needs (its image term already holds
    its interaction). Its df are Satterthwaite's for pooled S2 (sum of nk - 1 df) less pooled MSres/n,
    as in `difference_interval`, and it is floored at 0. Single-seed matrices carry no seed information
    and are skipped.
    """
    multi = [_matrix(m, "matrix") for m in matrices]
    multi = [m for m in multi if m.shape[0] >= 2]
    if not multi:
        raise ValueError("pooled_seed_variance needs at least one entry with 2 or more seeds")
    df_seeds = sum(m.shape[0] - 1 for m in multi)
    df_res = sum((m.shape[0] - 1) * (m.shape[1] - 1) for m in multi)
    s2_pooled, res_pooled = 0.0, 0.0
    for m in multi:
        s2, ms_res = _seed_mean_squares(m)
        s2_pooled += (m.shape[0] - 1) / df_seeds * s2
        res_pooled += (m.shape[0] - 1) / df_seeds * ms_res / m.shape[1]
    if s2_pooled <= res_pooled:
        return 0.0, float(df_seeds)
    return s2_pooled - res_pooled, _satterthwaite([(s2_pooled, df_seeds), (-res_pooled, df_res)])


def difference_interval(a, b, borrowed_a: tuple[float, float] | None = None, borrowed_b: tuple[float, float] | None = None,
                        level: float = 0.95) -> Interval:
    """The `level` interval for mean(A) - mean(B) in PSNR over seeds and images (module docstring).

    a, b: (seeds, images) PSNR matrices on the same images in the same order (a 1-D array is one seed).
    borrowed_a/_b: (variance of a single seed's mean, df) for an entry with one seed, usually from
    `pooled_seed_variance` on the same task; ignored where the entry measured its own (2+ seeds). When
    both entries borrow the very same estimate (equal tuples), it enters once with twice the weight:
    counting it as two independent estimates would double its df and narrow the interval wrongly.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    a, b = _matrix(a, "a"), _matrix(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must be paired on the same images: a has {a.shape[1]} images, b has {b.shape[1]}")
    n = a.shape[1]
    d = a.mean(axis=0) - b.mean(axis=0)  # paired per-image differences of the seed-averaged PSNRs
    var_d = float(d.var(ddof=1))
    images = var_d / n
    terms = [(images, n - 1)]
    seed_comp, seed_df, inter, source = [], [], [], []
    for m, borrowed in ((a, borrowed_a), (b, borrowed_b)):
        k = m.shape[0]
        if k >= 2:
            s2, ms_res = _seed_mean_squares(m)
            net = s2 - ms_res / n
            if net > 0:  # floored at 0 otherwise: the seeds then differ no more than the interaction explains
                terms += [(s2 / k, k - 1), (-ms_res / (n * k), (k - 1) * (n - 1))]
            seed_comp.append(max(net, 0.0) / k)
            seed_df.append(k - 1.0)
            inter.append(ms_res)
            source.append(MEASURED)
        elif borrowed is not None:
            var, df = float(borrowed[0]), float(borrowed[1])
            if var < 0 or not df > 0:
                raise ValueError(f"a borrowed seed variance needs variance >= 0 and df > 0, got {borrowed}")
            seed_comp.append(var)
            seed_df.append(df)
            inter.append(0.0)
            source.append(BORROWED)
        else:
            seed_comp.append(0.0)
            seed_df.append(0.0)
            inter.append(0.0)
            source.append(UNMEASURED)
    # A borrowed estimate enters the df once per independent source, not once per entry that uses it.
    shared = source == [BORROWED, BORROWED] and tuple(borrowed_a) == tuple(borrowed_b)
    if shared:
        terms.append((2 * seed_comp[0], seed_df[0]))
    else:
        terms += [(seed_comp[j], seed_df[j]) for j in (0, 1) if source[j] == BORROWED]
    var = seed_comp[0] + seed_comp[1] + images
    df = _satterthwaite(terms)
    se = math.sqrt(var)
    estimate = float(d.mean())  # = mean(a) - mean(b): every seed has every image
    half = t_quantile(0.5 + level / 2, df) * se if se > 0 else 0.0
    n_a, n_b = a.shape[0], b.shape[0]
    image_var = max(var_d - inter[0] / n_a - inter[1] / n_b, 0.0)
    spread = _Spread((seed_comp[0] * n_a, seed_comp[1] * n_b), (seed_df[0], seed_df[1]), shared, (inter[0], inter[1]), image_var)
    return Interval(estimate, estimate - half, estimate + half, df, se, level, Components(seed_comp[0], seed_comp[1], images),
                    n_a, n_b, n, (source[0], source[1]), spread)


# --- verdict and advice ---------------------------------------------------------------------------------

def _projected_half_width(iv: Interval, seeds: int | None, images: int) -> float:
    """The half-width expected with `seeds` per entry (None: as now) and `images` images, if the spreads
    stay as measured; a plain Welch–Satterthwaite over the components is close enough for advice."""
    sp = iv.spread
    now = (iv.n_seeds_a, iv.n_seeds_b)
    counts = now if seeds is None else (max(seeds, now[0]), max(seeds, now[1]))
    # Entries that keep their seeds keep their component and its df; new seeds measure their own spread.
    kept = [j for j in (0, 1) if counts[j] == now[j]]
    seed_terms = [(sp.seed_var[j] / counts[j], sp.seed_df[j] if j in kept else counts[j] - 1.0) for j in (0, 1)]
    if sp.shared and kept == [0, 1]:
        seed_terms = [(seed_terms[0][0] + seed_terms[1][0], sp.seed_df[0])]
    image_term = ((sp.image_var + sp.interaction[0] / counts[0] + sp.interaction[1] / counts[1]) / images, images - 1.0)
    terms = [t for t in seed_terms + [image_term] if t[0] > 0]
    var = sum(v for v, _ in terms)
    return t_quantile(0.5 + iv.level / 2, _satterthwaite(terms)) * math.sqrt(var) if var > 0 else 0.0


def _advice(iv: Interval, gap: float) -> str:
    """How many seeds per entry, or images, would likely bring the half-width under `gap`."""
    n, max_images = iv.n_images, MAX_IMAGE_FACTOR * iv.n_images
    more_seeds = range(max(iv.n_seeds_a, iv.n_seeds_b, 1) + 1, MAX_SEEDS + 1)
    seeds = next((k for k in more_seeds if _projected_half_width(iv, k, n) < gap), None)
    images = next((m for m in range(n + 1, max_images + 1) if _projected_half_width(iv, None, m) < gap), None)
    if UNMEASURED in iv.seed_source:  # projections would assume no training variance at all
        head = "training variance unmeasured: train 3 or more seeds per entry to measure it"
        return head + (f"; about {images} images (now {n}) would settle the image part" if images else "")
    if seeds and images:
        return f"about {seeds} seeds per entry or about {images} images (now {n}) would likely settle it"
    if seeds:
        return f"about {seeds} seeds per entry would likely settle it; more images would not: the seed spread dominates"
    if images:
        return f"about {images} images (now {n}) would likely settle it; more seeds would not: the image spread dominates"
    both = next((k for k in more_seeds if _projected_half_width(iv, k, max_images) < gap), None)
    if both:
        return f"it takes both: about {both} seeds per entry and {max_images} images would likely settle it"
    return f"it sits too close to the threshold: no feasible number of seeds or images (up to {MAX_SEEDS} per entry, {max_images}) settles it"


def verdict(iv: Interval, floor: float, margin: float = 0.1) -> tuple[str, str]:
    """(verdict, advice) for the claim "A - B >= floor", allowing `margin` dB (threshold = floor - margin).

    'holds' when the whole interval lies at or above the threshold, 'does not hold' when it lies wholly
    below, else 'inconclusive' with advice: the seeds per entry (the same for both, up to 50) or the
    images (up to 10x) that would likely shrink the half-width below |estimate - threshold|, assuming the
    measured variances stay as they are. A decided verdict carries advice only when the training
    variance went unmeasured (the interval then covers the images alone).
    """
    threshold = floor - margin
    if iv.low >= threshold:
        found = HOLDS
    elif iv.high < threshold:
        found = FAILS
    else:
        return INCONCLUSIVE, _advice(iv, abs(iv.estimate - threshold))
    return found, ("training variance unmeasured: the interval covers the images only" if UNMEASURED in iv.seed_source else "")


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "\u2212")  # a typographic minus, as in the tables


def format_interval(iv: Interval) -> str:
    """e.g. '+0.05 dB [−0.12, +0.22] 95 %, 3+3 seeds, 68 images' (plus the seed note where there is one)."""
    text = (f"{_signed(iv.estimate)} dB [{_signed(iv.low)}, {_signed(iv.high)}] {iv.level * 100:g} %, "
            f"{iv.n_seeds_a}+{iv.n_seeds_b} seeds, {iv.n_images} images")
    return f"{text}; {iv.note}" if iv.note else text
