"""`hyperbench weights export RUN --format official`: a run of the suite written in the official naming and
container, so a model trained here loads in the official code. A run the official code cannot build (another
width, an entry without official PyTorch code) is refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.common.atomic import replacing
from bench.common.checkpoint import load_tensors
from bench.common.errors import HyperbenchError
from bench.models.bank import level_key
from bench.weights.importing import get_format
from bench.weights.official import to_official

FORMATS = ("official",)


def _read_run(run_path: Path) -> tuple[dict, dict]:
    config, model = run_path / "config.json", run_path / "model.safetensors"
    if not (config.is_file() and model.is_file() and (run_path / "done").is_file()):
        raise HyperbenchError(f"{run_path} is not a finished run folder (config.json, model.safetensors and done)",
                              "give a run folder under --runs-dir whose training finished (`hyperbench runs` lists them)")
    state, _ = load_tensors(model)
    return json.loads(config.read_text()), state


def _strip(state: dict, prefix: str) -> dict:
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _save(obj, out: Path) -> Path:
    with replacing(out) as tmp:
        torch.save(obj, tmp)
    return out


def export_run(run_path, out, fmt: str = "official") -> list[Path]:
    """Write the run's weights as official checkpoint(s); returns the files written (DNI: two networks)."""
    if fmt not in FORMATS:
        raise HyperbenchError(f"unknown export format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    run_path, out = Path(run_path), Path(out)
    config, state = _read_run(run_path)
    entry, kwargs, levels = config["model"], dict(config["model_kwargs"]), config["levels"]
    if entry == "ffdnet":
        raise HyperbenchError("FFDNet's official weights are MatConvNet .mat files, which this suite reads but does not write",
                              "use the run folder itself (safetensors) with this suite")
    if entry == "perlevel":  # a per-level network is one plain network (the AdaFM basic model)
        member = kwargs.pop("levels")[0]
        return [_save(to_official(get_format("plain"), _strip(state, f"members.{level_key(member)}."), kwargs), out)]
    if entry == "dni":  # the start level's network and the end level's
        plain = get_format("plain")
        files = [out.with_name(f"{out.stem}_{tag}_{level:g}{out.suffix}") for tag, level in (("a", levels[0]), ("b", levels[-1]))]
        return [_save(to_official(plain, _strip(state, f"net_{tag}."), kwargs), f) for tag, f in zip("ab", files)]
    official_state = {k: v for k, v in state.items() if k != "endpoints"}
    return [_save(to_official(get_format(entry), official_state, kwargs, {"sigmas": levels}), out)]
