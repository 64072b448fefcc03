"""The official noise estimator (ifryed/HyperRes pre_trained/noise_detect.pth): a plain state dict whose
names are ours (models/NoiseNet.py: conv1, conv_seq.{0,2,4,6}.conv{1,2}, fc_seq.{0,2,4}), so the map is
the identity."""

from __future__ import annotations

from bench.weights.official import OfficialFile, OfficialFormat


def infer_kwargs(state: dict) -> dict:
    state["conv1.weight"]  # a KeyError names the file as not an estimator
    return {}


def official_key(key: str, kwargs: dict) -> str | None:
    return key


def export_refusal(kwargs: dict) -> str | None:
    return None if not kwargs else f"arguments {kwargs}: models/NoiseNet.py builds one fixed network"


FORMAT = OfficialFormat(
    entry="noisenet",
    source="ifryed/HyperRes models/NoiseNet.py, test_blind_noise.py (loadNoiseNet: load_state_dict of the plain file)",
    infer_kwargs=infer_kwargs,
    official_key=official_key,
    container_keys=(),
    export_refusal=export_refusal,
    files=(OfficialFile("noise_detect.pth", "denoise", (), "https://github.com/ifryed/HyperRes/blob/main/pre_trained/noise_detect.pth",
                        "blind AWGN sigma estimator, RGB, sigma 0-100",
                        "f763ea7c76708c0785b458ddaed5e13c42bbd42bc64bd3183785146087914219"),),
)
