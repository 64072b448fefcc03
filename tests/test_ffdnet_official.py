"""The official FFDNet weights (MATLAB v7.3, read at run time from ../shared/reference/weights) reproduce
the published CBSD68 numbers: 33.87 / 31.21 / 27.96 dB at sigma 15 / 25 / 50 (cszn/FFDNet README).

Protocol of the official test scripts: np.random.seed(0) before each image, float AWGN added to the
[0,1] image without clipping, output rounded to uint8, RGB PSNR over the whole image (odd sizes
padded inside the model), mean over the 68 images."""

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.common.errors import HyperbenchError
from bench.data.images import list_images, read_image
from bench.metrics.quality import MetricSpec, psnr

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "weights"
PUBLISHED = {15: 33.87, 25: 31.21, 50: 27.96}
BATCH = 4


def _weights(name):
    path = WEIGHTS / name
    if not path.is_file():
        pytest.skip(f"{path} is not on this machine")
    return path


@pytest.fixture(scope="module")
def colour_model():
    from baselines.ffdnet import load_official_ffdnet

    model = load_official_ffdnet(_weights("ffdnet_FFDNet_color.mat"))
    return model.to(memory_format=torch.channels_last)  # oneDNN's fast path for these 96-channel convs


def test_official_colour_weights_reproduce_cbsd68(shared_data, colour_model):
    images = [read_image(p) for p in list_images(shared_data / "CBSD68")]
    assert len(images) == 68
    scores = {sigma: [] for sigma in PUBLISHED}
    by_shape = {}
    for img in images:
        by_shape.setdefault(img.shape, []).append(img)
    with torch.inference_mode():
        for group in by_shape.values():
            for start in range(0, len(group), BATCH):
                clean = group[start : start + BATCH]
                noise = []
                for img in clean:
                    np.random.seed(0)
                    noise.append(np.random.randn(*img.shape))
                for sigma in PUBLISHED:
                    noisy = np.stack([c / 255.0 + n * sigma / 255.0 for c, n in zip(clean, noise)]).astype(np.float32)
                    x = torch.from_numpy(noisy).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
                    out = colour_model(x, float(sigma)).clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
                    scores[sigma] += [psnr(o, c, MetricSpec("rgb", 0)) for o, c in zip(out, clean)]
    means = {sigma: float(np.mean(v)) for sigma, v in scores.items()}
    print("FFDNet_color on CBSD68 (RGB PSNR):", {s: round(m, 3) for s, m in means.items()})
    for sigma, published in PUBLISHED.items():
        assert means[sigma] == pytest.approx(published, abs=0.05), sigma


def test_official_gray_weights_denoise_cameraman():
    import skimage.data

    from baselines.ffdnet import load_official_ffdnet

    model = load_official_ffdnet(_weights("ffdnet_FFDNet_gray.mat"))
    assert model.in_channels == 1
    clean = skimage.data.camera()
    np.random.seed(0)
    noisy = clean / 255.0 + np.random.randn(*clean.shape) * 25 / 255.0
    with torch.inference_mode():
        out = model(torch.from_numpy(noisy).float()[None, None], 25.0)
    restored = out[0, 0].clamp(0, 1).mul(255).round().to(torch.uint8).numpy()
    assert psnr(restored, clean, MetricSpec("gray", 0)) == pytest.approx(30.33, abs=0.1)  # weights README: 30.33 dB


def test_registry_entry_loads_weights_and_refuses_other_designs():
    from bench.models.catalog import create_model

    model = create_model("ffdnet", in_channels=1, weights=str(_weights("ffdnet_FFDNet_gray.mat")))
    assert model.endpoints.tolist() == [0.0, 75.0]
    with pytest.raises(HyperbenchError, match="1-channel"):
        create_model("ffdnet", in_channels=3, weights=str(_weights("ffdnet_FFDNet_gray.mat")))
    with pytest.raises(HyperbenchError, match="predicts the noise"):
        create_model("ffdnet", in_channels=1, weights=str(_weights("ffdnet_model_gray.mat")))
    with pytest.raises(HyperbenchError, match="one-sigma-map"):
        create_model("ffdnet", weights=str(_weights("ffdnet_FFDNet_3D_RGB.mat")))
