"""Checkpoints: safetensors for everything we write; foreign .pth files only with weights_only."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bench.common.atomic import replacing
from bench.common.errors import HyperbenchError

META_KEY = "hyperbench"  # all metadata as one JSON string: safetensors writes a metadata map in hash order, which
# differs between processes, so files of the same tensors and metadata would differ byte for byte


def save_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> None:
    """safetensors file written atomically, the same bytes for the same tensors and metadata in every process."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {META_KEY: json.dumps(metadata or {}, sort_keys=True)}
    with replacing(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def load_tensors(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = _decoded(f.metadata())
        return load_file(str(path)), meta
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:  # SafetensorError: truncated or not safetensors
        raise HyperbenchError(f"cannot read checkpoint {path}: {exc}", "the file is damaged; delete the run folder to retrain") from None


def read_metadata(path: Path) -> dict:
    """A safetensors file's metadata alone (no tensors read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return _decoded(f.metadata())
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise HyperbenchError(f"cannot read checkpoint {path}: {exc}", "the file is damaged; delete the run folder to retrain") from None


def _decoded(meta: dict | None) -> dict:
    """Metadata as save_tensors writes it (one JSON string), or as it wrote it before (a JSON string per key)."""
    meta = meta or {}
    if set(meta) == {META_KEY}:
        return json.loads(meta[META_KEY])
    return {k: json.loads(v) for k, v in meta.items()}


def load_state_into(model: torch.nn.Module, state: dict, source: str) -> None:
    """Strict load with a readable error when the checkpoint belongs to another architecture."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            detail.append(f"{len(wrong)} with other shapes (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise HyperbenchError(
            f"checkpoint {source} does not fit this model: " + "; ".join(detail),
            "use the model name and keyword arguments (meta_blocks, width, in_channels) the checkpoint was trained with",
        )
    model.load_state_dict(state)


def load_pth(path: Path) -> dict:
    """A foreign PyTorch file, loaded with weights_only=True: a pickle that carries code is refused."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HyperbenchError(
            f"refused to load {path}: it is not a plain tensor file ({type(exc).__name__})",
            "only state dicts of tensors are accepted; re-save the weights with torch.save(model.state_dict())",
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return {k.removeprefix("module."): v for k, v in obj.items()}
