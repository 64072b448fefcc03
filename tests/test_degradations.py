import numpy as np
import pytest
import skimage.data

from bench.common.errors import HyperbenchError
from bench.tasks.degradations import add_noise, jpeg, seeded_rng, sr_input
from bench.tasks.task import TASKS, get_task

CLEAN = skimage.data.astronaut()[100:164, 200:264]


def test_noise_is_deterministic_per_image_level_seed():
    a = add_noise(CLEAN, 25, seeded_rng("astronaut", 25, 0))
    b = add_noise(CLEAN, 25, seeded_rng("astronaut", 25, 0))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, add_noise(CLEAN, 25, seeded_rng("astronaut", 25, 1)))
    assert not np.array_equal(a, add_noise(CLEAN, 25, seeded_rng("coffee", 25, 0)))


def test_noise_quantisation_rules():
    rng = lambda: seeded_rng("x", 15, 0)  # noqa: E731
    none = add_noise(CLEAN, 15, rng(), clip=False, quantise="none")
    floor = add_noise(CLEAN, 15, rng(), quantise="floor")
    rnd = add_noise(CLEAN, 15, rng(), quantise="round")
    clipped = np.clip(none.astype(np.float64), 0, 1)
    assert np.allclose(floor * 255, np.floor(clipped * 255), atol=1e-4)
    assert np.allclose(rnd * 255, np.round(clipped * 255), atol=1e-4)
    # floor biases by about -0.5 DN, round does not
    assert (floor.mean() - rnd.mean()) * 255 == pytest.approx(-0.5, abs=0.05)
    noise = (none.astype(np.float64) - CLEAN / 255.0) * 255
    assert noise.std() == pytest.approx(15, rel=0.05)
    with pytest.raises(ValueError, match="quantise"):
        add_noise(CLEAN, 15, rng(), quantise="ceil")


def test_jpeg_is_deterministic_and_lossy():
    a, b = jpeg(CLEAN, 10), jpeg(CLEAN, 10)
    assert np.array_equal(a, b) and a.shape == CLEAN.shape
    err10 = np.abs(a * 255 - CLEAN).mean()
    err80 = np.abs(jpeg(CLEAN, 80) * 255 - CLEAN).mean()
    assert err10 > err80 > 0
    gray = CLEAN[..., 0]
    assert jpeg(gray, 30).shape == gray.shape


def test_sr_input_same_size_and_blurrier_with_scale():
    x2, x4 = sr_input(CLEAN, 2), sr_input(CLEAN, 4, method="matlab")
    assert x2.shape == x4.shape == CLEAN.shape
    assert np.abs(x4 * 255 - CLEAN).mean() > np.abs(x2 * 255 - CLEAN).mean()


def test_level_ranges():
    assert get_task("dejpeg").check_level(30) == 30.0
    with pytest.raises(HyperbenchError, match="outside the valid range"):
        get_task("dejpeg").check_level(0)
    with pytest.raises(HyperbenchError, match="integer"):
        get_task("dejpeg").check_level(30.5)
    with pytest.raises(HyperbenchError, match="outside the valid range"):
        get_task("denoise").check_level(-5)
    with pytest.raises(HyperbenchError, match="did you mean 'denoise'"):
        get_task("denoize")


def test_paper_level_sets_match_the_published_tables():
    import pandas as pd

    from bench.reports.published import published

    pub = published()
    for name, task in TASKS.items():
        printed = {float(v) for v in pub[(pub.task == name) & (pub.level != "mean") & (pub.table != "Table 4")].level}
        assert printed == set(task.table_levels), name
        assert set(task.table_levels) <= set(task.paper_eval_levels)
    assert len(TASKS["denoise"].paper_bank_levels) == 11  # eleven dedicated networks
    assert len(TASKS["dejpeg"].paper_bank_levels) == 8
    assert len(TASKS["sr"].paper_bank_levels) == 5
    assert isinstance(pub, pd.DataFrame)
