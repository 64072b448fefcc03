"""A profile's official weights (`weights:` under a model): found in the weights folder by file name (a path
relative to it) or by the sha256 of a known release, imported as runs, or reported absent with where to get them."""

from __future__ import annotations

import os
from pathlib import Path

from bench.data.checksums import sha256_file
from bench.training.profiles import Entry, Profile, expand
from bench.weights.importing import import_weights, official_files

WEIGHTS_ENV = "HYPERBENCH_WEIGHTS"


def weights_dir(given=None) -> Path:
    """--weights-dir, else $HYPERBENCH_WEIGHTS, else ./weights."""
    return Path(given or os.environ.get(WEIGHTS_ENV) or "weights").expanduser()


def locate(name: str, folder: Path, digests: dict) -> Path | None:
    """`folder/name`, else a file of the folder whose sha256 is that of the release called `name`."""
    if (folder / name).is_file():
        return folder / name
    known = {f.sha256 for _, f in official_files() if f.sha256 and name.endswith(f.name)}
    if not known or not folder.is_dir():
        return None
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix == Path(name).suffix):
        if path not in digests:
            digests[path] = sha256_file(path)
        if digests[path] in known:
            return path
    return None


def where_to_get(entry: Entry, name: str) -> str:
    sources = {f.source for e, f in official_files() if name.endswith(f.name) and e in (entry.arch, "plain")}
    return " or ".join(sorted(sources)) or "the entry's official repository"


def import_entries(entries: list[Entry], folder, runs_dir, log=print) -> list[Entry]:
    """Import the official files of every entry with `weights`; returns the entries whose files are absent
    (each with `absent` saying which file and where to get it). Entries without `weights` are left alone."""
    folder, digests, absent = weights_dir(folder), {}, []
    for entry in (e for e in entries if e.weights):
        found = [locate(name, folder, digests) for name in entry.weights]
        missing = [name for name, path in zip(entry.weights, found) if path is None]
        if missing:
            entry.absent = "; ".join(f"{name} not in {folder}: get it from {where_to_get(entry, name)}" for name in missing)
            absent.append(entry)
            continue
        rundir = import_weights(entry.arch, found, entry.task, runs_dir)
        entry.runs, entry.model_kwargs = [rundir.run], dict(rundir.run.config["model_kwargs"])
        log(f"official weights of {entry.model} ({entry.task}): {', '.join(str(p) for p in found)} -> {rundir.path}")
    for entry in absent:
        log(f"absent: {entry.model} ({entry.task}): {entry.absent}")
    return absent


def profile_entries(profile: Profile, paths, tasks=None, models=None, log=print) -> tuple[list[Entry], list[Entry]]:
    """(entries with runs, entries whose official files are absent): the profile's entries, official weights
    imported from `paths.weights` (idempotent: the same files give the same runs)."""
    entries = expand(profile, tasks, models)
    if not any(e.weights for e in entries):
        return entries, []
    absent = import_entries(entries, paths.weights, paths.runs, log)
    return [e for e in entries if not e.absent], absent
