"""The official NoiseNet weights (ifryed/HyperRes pre_trained/noise_detect.pth): where they are on
this machine, their checksum, and a strict load into the registered `noisenet` entry."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from bench.common.checkpoint import load_pth, load_state_into
from bench.common.errors import HyperbenchError
from bench.models.catalog import create_model
from bench.models.noisenet import NoiseNet

OFFICIAL_FILE = "hyperres_noise_detect.pth"
OFFICIAL_SHA256 = "f763ea7c76708c0785b458ddaed5e13c42bbd42bc64bd3183785146087914219"  # weights/README.md
REPO_ROOT = Path(__file__).resolve().parents[2]


def official_weights_path(data_root=None) -> Path | None:
    """Where the official weights are: $HYPERBENCH_NOISENET_WEIGHTS, next to the data root, or ../shared."""
    explicit = os.environ.get("HYPERBENCH_NOISENET_WEIGHTS")
    if explicit:
        return Path(explicit)
    roots = [Path(data_root).parent] if data_root else []
    if os.environ.get("HYPERBENCH_DATA"):
        roots.append(Path(os.environ["HYPERBENCH_DATA"]).parent)
    roots.append(REPO_ROOT.parent / "shared")
    for root in roots:
        path = root / "reference" / "weights" / OFFICIAL_FILE
        if path.is_file():
            return path
    return None


def load_official(path=None, crops: int = 8, seed: int = 0) -> NoiseNet:
    """The official estimator (sha256-checked, strict load); a clear error when the file is absent."""
    path = Path(path) if path else official_weights_path()
    if path is None or not path.is_file():
        raise HyperbenchError(
            f"the official NoiseNet weights ({OFFICIAL_FILE}) are not on this machine",
            "set HYPERBENCH_NOISENET_WEIGHTS to the file, or train an estimator (the tune section's estimator settings)",
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != OFFICIAL_SHA256:
        raise HyperbenchError(f"{path} is not the official noise_detect.pth (sha256 {digest[:12]}...)", "re-copy it from ifryed/HyperRes/pre_trained/")
    model = create_model("noisenet", crops=crops, seed=seed)
    load_state_into(model, flush_subnormals(load_pth(path)), str(path))
    return model.eval()


def flush_subnormals(state: dict) -> dict:
    """Subnormal floats set to 0. Nearly half of the official weights are subnormal (149,560 of 330,561, about 1e-44:
    the official weight decay 0.9 drove them to zero), and CPU convs on subnormal weights run about 100x slower. Each one adds less than
    1e-40 to a sum of normal floats, which rounds it away: the estimates do not change (tests/test_noisenet.py)."""
    tiny = torch.finfo(torch.float32).tiny
    return {k: v.masked_fill(v.abs() < tiny, 0.0) if v.dtype == torch.float32 else v for k, v in state.items()}
