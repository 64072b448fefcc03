"""bench.reports.intervals: the seeds-and-images interval for a PSNR gap, its coverage, verdicts and edge cases."""

import re

import numpy as np
import pytest

from bench.reports.intervals import (
    BORROWED,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    MEASURED,
    UNMEASURED,
    difference_interval,
    format_interval,
    pooled_seed_variance,
    t_quantile,
    verdict,
)

DRAWS = 2000
# The few-image design sits near the band's top (96.5 % over 140,000 draws: Satterthwaite's estimated df
# err low when three small-df components are alike), where 2,000 draws (SE 0.4 %) would read above 97 %
# about one time in nine; 8,000 (SE 0.2 %) keep the check about the estimator, not the simulation noise.
DRAWS_FEW_IMAGES = 8000
GAP = 0.3  # the true muA - muB of the simulations


def simulate(rng, draws, n_images, seeds, means, image_sd=2.0, pair_sd=0.15, seed_sd=0.08, inter_sd=0.05):
    """One (draws, seeds, images) PSNR array per entry, all on the same images.

    An image effect shared by every entry (sd `image_sd`, cancels in pairs), each entry's own image
    deviation (sd pair_sd/√2, so a paired difference has sd `pair_sd`), a seed effect per training run
    and a seed × image interaction."""
    common = rng.normal(0, image_sd, (draws, 1, n_images))
    out = []
    for k, mu in zip(seeds, means):
        own = rng.normal(0, pair_sd / np.sqrt(2), (draws, 1, n_images))
        out.append(mu + common + own + rng.normal(0, seed_sd, (draws, k, 1)) + rng.normal(0, inter_sd, (draws, k, n_images)))
    return out


def coverage(a, b, borrow_from=None) -> float:
    hits = 0
    for r in range(len(a)):
        borrowed = pooled_seed_variance([m[r] for m in borrow_from]) if borrow_from else None
        iv = difference_interval(a[r], b[r], borrowed, borrowed)
        hits += iv.low <= GAP <= iv.high
    return hits / len(a)


# These draws read 96.7 % with 68 images (95.3 % over 40,000 other draws: this seed's 2,000 run high),
# 96.4 % with 5 images and 94.8 % borrowed (94.6 % over 40,000).
@pytest.mark.parametrize("n_images, draws", [(68, DRAWS), (5, DRAWS_FEW_IMAGES)], ids=["68-images", "Set5-like"])
def test_coverage_with_measured_seeds(n_images, draws):
    a, b = simulate(np.random.default_rng(20240 + n_images), draws, n_images, (3, 3), (30.0 + GAP, 30.0))
    assert 0.93 <= coverage(a, b) <= 0.97


def test_coverage_with_a_borrowed_seed_variance():
    # One seed each; the seed spread comes from another pair of 3-seed entries of the same task.
    a, b, c, d = simulate(np.random.default_rng(7), DRAWS, 68, (1, 1, 3, 3), (30.0 + GAP, 30.0, 29.0, 29.5))
    assert 0.93 <= coverage(a, b, borrow_from=(c, d)) <= 0.97


def test_t_quantile_matches_the_tables():
    table = {(0.975, 1): 12.7062047, (0.975, 2): 4.3026527, (0.975, 4): 2.7764451, (0.975, 10): 2.2281389,
             (0.975, 30): 2.0422725, (0.995, 5): 4.0321430, (0.95, 3): 2.3533634, (0.975, 1e9): 1.9599640,
             (0.975, 4.5): 2.6589123, (0.975, 0.5): 164.557673}  # real df, as Satterthwaite's are
    for (p, df), value in table.items():
        assert t_quantile(p, df) == pytest.approx(value, rel=1e-7)
        assert t_quantile(1 - p, df) == pytest.approx(-value, rel=1e-7)


def _entries(gap, seed_offsets_a, seed_offsets_b, n_images=20, pair_sd=0.02):
    """Deterministic matrices with mean(a) - mean(b) == gap exactly."""
    rng = np.random.default_rng(0)
    common = rng.normal(30.0, 2.0, n_images)
    own = rng.normal(0, pair_sd, n_images)
    own -= own.mean()
    a = gap + common + own + np.subtract(seed_offsets_a, np.mean(seed_offsets_a))[:, None]
    b = common + np.subtract(seed_offsets_b, np.mean(seed_offsets_b))[:, None]
    return a, b


def test_verdicts_come_out_as_constructed():
    a, b = _entries(1.0, [0.05, 0.0, -0.05], [-0.05, 0.0, 0.05])
    iv = difference_interval(a, b)
    assert iv.estimate == pytest.approx(1.0) and iv.seed_source == (MEASURED, MEASURED)
    assert verdict(iv, floor=0.3) == (HOLDS, "")
    a, b = _entries(-1.0, [0.05, 0.0, -0.05], [-0.05, 0.0, 0.05])
    assert verdict(difference_interval(a, b), floor=0.0) == (FAILS, "")


def test_a_gap_near_the_threshold_with_a_large_seed_spread_is_inconclusive_with_advice():
    floor, margin = 0.3, 0.1
    a, b = _entries(floor - margin + 0.2, [0.3, 0.0, -0.3], [-0.3, 0.0, 0.3])
    iv = difference_interval(a, b)
    found, advice = verdict(iv, floor, margin)
    assert found == INCONCLUSIVE
    assert re.fullmatch(r"about \d+ seeds per entry would likely settle it; more images would not: the seed spread dominates", advice)
    assert 3 < int(advice.split()[1]) <= 50
    # Exactly on the threshold no amount of data can decide.
    a, b = _entries(floor - margin, [0.3, 0.0, -0.3], [-0.3, 0.0, 0.3])
    assert verdict(difference_interval(a, b), floor, margin) == (
        INCONCLUSIVE, "it sits too close to the threshold: no feasible number of seeds or images (up to 50 per entry, 200) settles it")


def test_an_image_dominated_gap_asks_for_images():
    a, b = _entries(0.25, [0.001, 0.0, -0.001], [-0.001, 0.0, 0.001], pair_sd=0.5)
    found, advice = verdict(difference_interval(a, b), floor=0.1, margin=0.0)
    assert found == INCONCLUSIVE and "images (now 20) would likely settle it" in advice and "more seeds would not" in advice


def test_a_single_seed_without_borrowing_leaves_training_variance_unmeasured():
    a, b = _entries(0.5, [0.0], [0.0], pair_sd=0.3)
    iv = difference_interval(a, b)
    assert iv.seed_source == (UNMEASURED, UNMEASURED) and iv.note == "training variance unmeasured"
    assert iv.components.seed_a == iv.components.seed_b == 0.0 and iv.df == pytest.approx(19)
    assert format_interval(iv).endswith("1+1 seeds, 20 images; training variance unmeasured")
    assert verdict(iv, floor=0.0)[1] == "training variance unmeasured: the interval covers the images only"
    found, advice = verdict(iv, floor=iv.estimate + 0.1 + iv.half_width / 2)
    assert found == INCONCLUSIVE and advice.startswith("training variance unmeasured: train 3 or more seeds per entry")


def test_a_borrowed_variance_widens_the_interval_and_says_so():
    a, b = _entries(0.5, [0.0], [0.0], pair_sd=0.3)
    plain = difference_interval(a, b)
    borrowed = difference_interval(a, b, borrowed_a=(0.01, 4), borrowed_b=(0.01, 4))
    assert borrowed.seed_source == (BORROWED, BORROWED) and borrowed.note == "seed spread borrowed"
    assert borrowed.components.seed_a == 0.01 and borrowed.half_width > plain.half_width
    # The same estimate used twice is one source of 4 df, not two independent ones (8 df).
    assert borrowed.df < 4 + 19
    separate = difference_interval(a, b, borrowed_a=(0.01, 4), borrowed_b=(0.0100001, 4))
    assert separate.df > borrowed.df


def test_pooled_seed_variance_recovers_the_seed_spread():
    rng = np.random.default_rng(3)
    entries = simulate(rng, 1, 200, (8, 8, 8, 8), (30, 30, 30, 30), seed_sd=0.2, inter_sd=0.3)
    variance, df = pooled_seed_variance([e[0] for e in entries] + [entries[0][0][:1]])  # the single seed is skipped
    assert 27 < df <= 28 and variance == pytest.approx(0.04, rel=0.5)  # 4 entries of 7 df, a little less net of MSres/n
    with pytest.raises(ValueError, match="2 or more seeds"):
        pooled_seed_variance([entries[0][0][:1]])


def test_format_interval():
    a = np.array([[30.1, 28.0, 31.0], [30.2, 28.1, 31.2]])
    b = np.array([[30.0, 28.0, 31.0], [30.1, 28.0, 30.9]])
    assert format_interval(difference_interval(a, b)) == "+0.10 dB [−0.47, +0.67] 95 %, 2+2 seeds, 3 images"
    assert format_interval(difference_interval(b, a)) == "−0.10 dB [−0.67, +0.47] 95 %, 2+2 seeds, 3 images"


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="at least 2 images"):
        difference_interval(np.ones((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="same images: a has 5 images, b has 4"):
        difference_interval(np.ones((3, 5)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        difference_interval(np.array([[1.0, np.inf]]), np.ones((1, 2)))
    with pytest.raises(ValueError, match="level"):
        difference_interval(np.ones((2, 3)), np.ones((2, 3)), level=95)
