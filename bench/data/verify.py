"""Verification of a dataset folder: missing, extra and corrupted files against the manifest's
checksums, or against those recorded at prepare (sets published without per-file checksums), or for a
derived set (DIV2K-sub) against the checksums written when it was cut."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.data.checksums import RECORD_NAME, compare_files, read_record
from bench.data.datasets import DatasetSpec, get_dataset
from bench.data.images import list_images


@dataclass
class Report:
    name: str
    folder: Path
    state: str  # ok | absent | problems
    expected: int | None
    present: int
    missing: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    corrupted: list = field(default_factory=list)
    checksums: str = ""  # where the checksums came from

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def check_folder(spec: DatasetSpec, folder: Path) -> dict:
    """Missing / extra / corrupted files, and where the checksums came from."""
    sums, kind = spec.checksums(), "manifest"
    if not sums:
        record = read_record(folder)
        sums, kind = (record["files"], "recorded " + record.get("recorded_at", "")[:10]) if record else (None, "")
    if sums:
        return {**compare_files(folder, sums, spec.converted()), "checksums": kind}
    present = {p.name for p in list_images(folder)}
    names = set(spec.names or present)
    return {"missing": sorted(names - present), "extra": sorted(present - names), "corrupted": [], "checksums": "none (names only)"}


def verify(name: str | DatasetSpec, root: Path) -> Report:
    spec = name if isinstance(name, DatasetSpec) else get_dataset(name)
    if spec.derived_from:
        return verify_subimages(spec, Path(root))
    folder = Path(root) / spec.name
    if not folder.is_dir():
        return Report(spec.name, folder, "absent", spec.count, 0)
    found = check_folder(spec, folder)
    bad = found["missing"] or found["extra"] or found["corrupted"]
    return Report(spec.name, folder, "problems" if bad else "ok", spec.count, len(list_images(folder)),
                  found["missing"], found["extra"], found["corrupted"], found["checksums"])


def verify_subimages(spec: DatasetSpec, root: Path) -> Report:
    """Every cut folder under <root>/DIV2K-sub against the checksums written when it was cut."""
    parent = Path(root) / spec.name
    folders = sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")) if parent.is_dir() else []
    if not folders:
        return Report(spec.name, parent, "absent", None, 0)
    missing, extra, corrupted, present = [], [], [], 0
    for folder in folders:
        record = read_record(folder)
        if record is None:
            missing.append(f"{folder.name}/{RECORD_NAME}")
            continue
        found = compare_files(folder, record["files"])
        present += len(list_images(folder))
        missing += [f"{folder.name}/{n}" for n in found["missing"]]
        extra += [f"{folder.name}/{n}" for n in found["extra"]]
        corrupted += [f"{folder.name}/{n}" for n in found["corrupted"]]
    state = "problems" if missing or extra or corrupted else "ok"
    return Report(spec.name, parent, state, None, present, missing, extra, corrupted, f"recorded at extraction ({len(folders)} cut)")
