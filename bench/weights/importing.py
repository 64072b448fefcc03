"""`hyperbench weights import`: an official checkpoint becomes a finished run folder of the suite.

The run's config says where the weights came from (file names and sha256, the release they belong to) and
that they were imported, not trained here; eval, tables, tune and the demo use the run like any other.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from bench.common.checkpoint import save_tensors
from bench.common.errors import HyperbenchError, did_you_mean
from bench.data.checksums import sha256_file
from bench.models.catalog import create_model, model_cfg
from bench.tasks.task import get_task
from bench.training.runs import RUN_FORMAT, Run, RunDir
from bench.weights.official import OfficialFile, OfficialFormat, to_suite, unwrap

FORMAT_MODULES = ("hyperres", "adafm", "plain", "cresmd", "cfsnet", "hinet", "noisenet")
# Entries without a format of their own: DNI interpolates two plain networks; FFDNet's weights are MATLAB files.
SPECIAL = ("dni", "ffdnet")
ESTIMATES = {"noisenet": ("denoise",)}  # entries outside the tables: the task whose level they estimate
_FFDNET = "https://github.com/cszn/FFDNet/blob/master/models/"
FFDNET_FILES = (  # sha256 from ../shared/reference/weights/README.md
    OfficialFile("FFDNet_color.mat", "denoise", (0, 75), _FFDNET + "FFDNet_color.mat", "RGB AWGN, sigma 0-75, noise not clipped",
                 "a4b5a9da21294ab9ba6ed5c6cc459c46dff20c025eb7d3ab82e8e0bb00541793"),
    OfficialFile("FFDNet_gray.mat", "denoise", (0, 75), _FFDNET + "FFDNet_gray.mat", "gray AWGN, sigma 0-75, noise not clipped",
                 "14c231e87a444a9bd85b0b5e174e73b4f6ac50bf4050e75a0d3f4d69f77a2093"),
)


def formats() -> dict[str, OfficialFormat]:
    found = {}
    for name in FORMAT_MODULES:
        try:
            found[name] = importlib.import_module(f"bench.weights.formats.{name}").FORMAT
        except ModuleNotFoundError:  # a format not written yet
            continue
    return found


def get_format(entry: str) -> OfficialFormat:
    known = formats()
    if entry not in known:
        raise HyperbenchError(f"no official checkpoint format for {entry!r}", did_you_mean(entry, [*known, *SPECIAL]))
    return known[entry]


def official_files() -> list[tuple[str, OfficialFile]]:
    """(entry, file) for every released checkpoint the suite knows."""
    return [(name, f) for name, fmt in formats().items() for f in fmt.files] + [("ffdnet", f) for f in FFDNET_FILES]


def known_file(entry: str, path: Path, digest: str, task: str) -> OfficialFile | None:
    """The release record of a file for a task (one file may serve two tasks), matched by sha256 where
    known, else by name."""
    records = [f for e, f in official_files() if e == entry]
    records.sort(key=lambda f: f.task != task)  # the task's own record first
    return next((f for f in records if f.sha256 and f.sha256 == digest), None) or next((f for f in records if f.name == path.name), None)


def read_checkpoint(path: Path):
    """A .pth file loaded with weights_only=True (a pickle carrying code is refused), container kept."""
    if not path.is_file():
        raise HyperbenchError(f"checkpoint {path} not found", "give the path of the downloaded official file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise HyperbenchError(f"refused to load {path}: not a plain tensor file ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
                              "give the official checkpoint as released (loaded with weights_only=True)") from None


def _one(fmt: OfficialFormat, path: Path) -> tuple[dict, dict, dict]:
    state, extras = unwrap(read_checkpoint(path), fmt, str(path))
    kwargs, ours = to_suite(fmt, state, str(path))
    return kwargs, ours, extras


def _state_of(entry: str, paths: list[Path], task: str) -> tuple[dict, dict, dict]:
    """(model kwargs, our-named state, container extras) of the files of one entry."""
    if entry == "ffdnet":
        from baselines.ffdnet import load_official_ffdnet

        model = load_official_ffdnet(paths[0])
        return {"in_channels": model.in_channels, "width": model.convs[0].out_channels, "convs": len(model.convs)}, model.state_dict(), {}
    if entry == "dni":  # net_a: the start level's network, net_b: the end level's (alpha 1 at the start)
        kw_a, a, _ = _one(get_format("plain"), paths[0])
        kw_b, b, _ = _one(get_format("plain"), paths[1])
        if kw_a != kw_b:
            raise HyperbenchError(f"the two DNI networks differ: {paths[0].name} is {kw_a}, {paths[1].name} is {kw_b}",
                                  "give two networks of the same architecture (start level first, end level second)")
        return kw_a, {**{f"net_a.{k}": v for k, v in a.items()}, **{f"net_b.{k}": v for k, v in b.items()}}, {}
    fmt = get_format(entry)
    kwargs, state, extras = _one(fmt, paths[0])
    return (fmt.for_task(kwargs, task) if fmt.for_task else kwargs), state, extras


def _levels(entry: str, task: str, given, extras: dict, record: OfficialFile | None, source: str) -> list[float]:
    if entry in ESTIMATES:  # an estimator is not conditioned on a level
        return []
    levels = given or extras.get("sigmas") or (record.levels if record and record.task == task else None)
    if not levels:
        raise HyperbenchError(f"{source} does not say which levels it was trained at", "pass --levels (e.g. --levels 15,75 for a start and an end level)")
    t = get_task(task)
    return [float(t.check_level(v)) for v in levels]


def import_weights(entry: str, files, task: str, runs_dir, levels=None) -> RunDir:
    """Store official weights as a finished run (idempotent: the same files give the same run folder)."""
    from bench.training.settings import control_levels, run_recipe

    cfg = model_cfg(entry)
    if task not in (cfg.tasks or ESTIMATES.get(entry, ())):
        raise HyperbenchError(f"{entry} is not an entry of task {task!r}", f"its tasks: {', '.join(cfg.tasks)}")
    paths = [Path(f) for f in files]
    if len(paths) != (2 if entry == "dni" else 1):
        raise HyperbenchError(f"{entry} takes {'two files (start-level network, end-level network)' if entry == 'dni' else 'one file'}, got {len(paths)}",
                              "give the official file(s) after the entry name")
    kwargs, state, extras = _state_of(entry, paths, task)
    kwargs = {**cfg.task_kwargs.get(task, {}), **kwargs}  # what the file cannot say (CFSNet: the task decides residual output)
    digests = [sha256_file(p) for p in paths]
    record = known_file("plain" if entry == "dni" else entry, paths[0], digests[0], task)
    run_levels = _levels(entry, task, levels, extras, record, str(paths[0]))
    control = control_levels(run_recipe(entry, task)) if entry == "cresmd" else None
    run = Run({
        "format": RUN_FORMAT, "model": entry, "model_kwargs": kwargs, "task": task, "levels": run_levels,
        **({"control": control} if control else {}),
        "imported": {"files": [{"name": p.name, "sha256": d} for p, d in zip(paths, digests)],
                     "source": record.source if record else "", "setting": record.setting if record else ""},
    })
    model = create_model(entry, **kwargs)
    missing = set(model.state_dict()) - set(state)
    model.load_state_dict(state, strict=False)
    if hasattr(model, "set_endpoints"):  # the levels at control 0 and 1: the recipe's mapping, else the first and last level
        start, end = control or (run_levels[0], run_levels[-1])
        model.set_endpoints(start, end)
        missing.discard("endpoints")
    if missing:
        raise HyperbenchError(f"importing {entry} left {sorted(missing)[:5]} unset", "this is a bug in the format of the entry")
    rundir = RunDir(runs_dir, run)
    rundir.create()
    save_tensors(rundir.model_file, model.state_dict(), {"run_id": run.run_id, "model": entry, "imported": run.config["imported"]})
    rundir.mark_done({"run_id": run.run_id, "imported": True, "files": run.config["imported"]["files"]})
    return rundir
