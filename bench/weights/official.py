"""How an entry's official checkpoint names map onto this suite's parameter names.

Each entry with released weights has an `OfficialFormat` (bench/weights/formats/<entry>.py): the model
keyword arguments read from the official tensors' shapes, and for each of our state-dict keys the
official key it is stored under. Import and export are the same mapping read in both directions, so a
checkpoint exported and imported again is the same tensors. Every check is strict: a key of the file
that maps to nothing, a key the model needs that the file lacks, or another shape is an error that
lists the first offending keys and what the entry expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bench.common.errors import HyperbenchError, did_you_mean

SHOWN = 5  # offending keys listed in an error


@dataclass(frozen=True)
class OfficialFile:
    """A released file: where it comes from and what it was trained for."""

    name: str  # file name as released
    task: str
    levels: tuple  # the levels it was trained at (HyperRes files also record them)
    source: str  # repository and path (or the README link) to get it from
    setting: str = ""  # the setting it was trained for, said in tables when it differs from the table's
    sha256: str = ""  # when known


@dataclass(frozen=True)
class OfficialFormat:
    entry: str  # the registry name of the model this format builds
    source: str  # official file:line that defines the names (cited)
    infer_kwargs: Callable[[dict], dict]  # official state (names -> tensors) -> our model kwargs
    official_key: Callable[[str, dict], str | None]  # our key, kwargs -> official key (None: not in official files)
    container_keys: tuple = ("params", "state_dict")  # a wrapper dict may hold the state under one of these
    wrap: Callable[[dict, dict], dict] | None = None  # (official state, extras) -> object to torch.save; default: the state
    export_refusal: Callable[[dict], str | None] = lambda kwargs: None  # why the official code cannot build these kwargs
    files: tuple = field(default_factory=tuple)  # OfficialFile records of the released checkpoints
    # Where an official tensor is laid out otherwise than ours (a transposed or reshaped weight): our key,
    # tensor, kwargs -> the tensor in the other layout. None: the same layout.
    convert_in: Callable[[str, torch.Tensor, dict], torch.Tensor] | None = None
    convert_out: Callable[[str, torch.Tensor, dict], torch.Tensor] | None = None
    for_task: Callable[[dict, str], dict] | None = None  # (kwargs, task) -> kwargs: what only the task can tell


def unwrap(obj, fmt: OfficialFormat, source: str) -> tuple[dict, dict]:
    """(state, extras): the tensors of a checkpoint and the other top-level values of its container; a
    DataParallel `module.` prefix is removed."""
    if not isinstance(obj, dict):
        raise HyperbenchError(f"{source} holds a {type(obj).__name__}, not a state dict", f"give an official {fmt.entry} checkpoint")
    extras = {}
    for key in fmt.container_keys:
        if isinstance(obj.get(key), dict):
            extras = {k: v for k, v in obj.items() if k != key}
            obj = obj[key]
            break
    state = {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise HyperbenchError(f"{source} holds no tensors (top-level keys {sorted(obj)[:SHOWN]})",
                              f"give an official {fmt.entry} checkpoint (its state dict, or a dict with one of {list(fmt.container_keys)})")
    return state, extras


def _listing(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:SHOWN]) + (f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else "")


def key_map(fmt: OfficialFormat, own_keys, kwargs: dict) -> dict:
    """our key -> official key, for the keys the official files store."""
    mapping = {k: fmt.official_key(k, kwargs) for k in own_keys}
    return {k: v for k, v in mapping.items() if v is not None}


def to_suite(fmt: OfficialFormat, state: dict, source: str) -> tuple[dict, dict]:
    """(model kwargs, our-named state) of an official-named state; the keys the official files do not
    store (e.g. `endpoints`) are left out for the caller to set."""
    from bench.models.catalog import create_model

    try:
        kwargs = fmt.infer_kwargs(state)
    except KeyError as exc:
        raise HyperbenchError(f"{source} is not an official {fmt.entry} checkpoint: it lacks {exc.args[0]!r}",
                              f"give an official {fmt.entry} checkpoint ({fmt.source})") from None
    with torch.device("meta"):
        own = create_model(fmt.entry, **kwargs).state_dict()
    mapping = key_map(fmt, own, kwargs)
    wanted = set(mapping.values())
    unknown, missing = set(state) - wanted, wanted - set(state)
    problems = []
    if unknown:
        first = sorted(unknown)[0]
        problems.append(f"{len(unknown)} unknown keys ({_listing(unknown)}; {did_you_mean(first, wanted)})")
    if missing:
        problems.append(f"{len(missing)} missing keys ({_listing(missing)})")
    convert = fmt.convert_in or (lambda key, tensor, kw: tensor)
    ours = {o: convert(o, state[k], kwargs) for o, k in mapping.items() if k in state}
    wrong = [o for o, t in ours.items() if tuple(t.shape) != tuple(own[o].shape)]
    if wrong:
        problems.append(f"{len(wrong)} keys with another shape (" + ", ".join(
            f"{mapping[o]}: {tuple(state[mapping[o]].shape)}, expected {tuple(own[o].shape)}" for o in wrong[:SHOWN]) + ")")
    if problems:
        raise HyperbenchError(f"{source} does not fit {fmt.entry} {kwargs}: " + "; ".join(problems),
                              f"give an official {fmt.entry} checkpoint; the names follow {fmt.source}")
    return kwargs, {o: t.detach().clone().float() for o, t in ours.items()}


def to_official(fmt: OfficialFormat, state: dict, kwargs: dict, extras: dict | None = None):
    """The object the official code loads (torch.save it): our state renamed, wrapped as the official container."""
    reason = fmt.export_refusal(kwargs)
    if reason:
        raise HyperbenchError(f"the official {fmt.entry} code cannot build this model: {reason}",
                              "export a run trained with the official architecture settings")
    convert = fmt.convert_out or (lambda key, tensor, kw: tensor)
    official = {k: convert(o, state[o], kwargs).detach().clone().contiguous() for o, k in key_map(fmt, state, kwargs).items()}
    return fmt.wrap(official, extras or {}) if fmt.wrap else official
