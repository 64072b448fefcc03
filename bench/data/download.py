"""Getting a dataset onto disk: download its archive (urllib only, resumable through HTTP Range on a
.part file, sha256-checked), or take a local copy, then extract into a temp folder next to the target,
check every file and only then rename it into place: <root>/<NAME>/<files>. A failure leaves no
half-prepared dataset behind, only a .part download to resume from."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from PIL import Image

from bench.common.errors import HyperbenchError
from bench.common.progress import progress_bar
from bench.data.checksums import RECORD_NAME, sha256_file
from bench.data.datasets import DATASETS, DatasetSpec, get_dataset
from bench.data.images import IMAGE_SUFFIXES, list_images
from bench.data.verify import check_folder, verify
from bench.version import __version__

DOWNLOADS = ".downloads"
CHUNK = 1 << 16


class _Incomplete(Exception):
    """The server closed the connection before the whole file arrived."""


def fetch(url: str, dest: Path, sha256: str | None = None, attempts: int = 3, timeout: float = 60.0, label: str = "") -> Path:
    """Download `url` to `dest` through `dest`.part, resuming a partial .part with an HTTP Range request.
    Up to `attempts` connections; an unfinished download keeps its .part so the next call resumes it."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    problem = ""
    for attempt in range(attempts):
        try:
            _fetch_once(url, part, timeout, label or dest.name)
            break
        except (_Incomplete, http.client.HTTPException, OSError) as exc:  # URLError and socket timeouts are OSErrors
            problem = str(getattr(exc, "reason", "") or exc) or type(exc).__name__
            if attempt + 1 < attempts:
                time.sleep(0.1 * 2**attempt)
    else:
        have = part.stat().st_size if part.exists() else 0
        resume = f"run the same command again (it resumes from {part}), or " if have else "check the network and retry, or "
        raise HyperbenchError(
            f"download of {url} did not finish after {attempts} attempts ({have:,} bytes so far; {problem})",
            resume + "fetch the archive yourself and pass it with --from FILE",
        )
    if sha256 and sha256_file(part) != sha256:
        got = sha256_file(part)
        part.unlink()
        _remove_if_empty(part.parent)
        raise HyperbenchError(
            f"{url} does not match its published checksum (sha256 {got[:16]}..., expected {sha256[:16]}...); the download was deleted",
            "retry later or from another mirror; if the publisher changed the archive, report it",
        )
    os.replace(part, dest)
    return dest


def _fetch_once(url: str, part: Path, timeout: float, label: str) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"hyperbench/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except ValueError as exc:
        raise HyperbenchError(f"cannot download {url!r}: {exc}", "the source URL must be http(s)://...") from None
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is already whole
            return
        raise HyperbenchError(f"{url} answered HTTP {exc.code} {exc.reason}", "check the URL, or fetch the archive by hand and use --from FILE") from None
    with response:
        total = None
        if have and response.status == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise _Incomplete("the server resumed at the wrong offset")
            total = int(match.group(2)) if match.group(2) != "*" else None
            mode = "ab"
        else:  # the server ignored the Range request (or there was none): start over
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
        with open(part, mode) as f, progress_bar(f"download {label}", total=total, completed=have, show_loss=False) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                have += len(chunk)
                bar.update(have)
    if total is not None and have < total:
        raise _Incomplete(f"connection closed at {have:,} of {total:,} bytes")


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


# --------------------------------------------------------------------------- reading a copy


@contextmanager
def _archive_members(path: Path):
    """{member path: function returning its bytes} for the regular files of a zip or tar archive."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield {i.filename: (lambda i=i: archive.read(i)) for i in archive.infolist() if not i.is_dir()}
    elif tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as archive:
            yield {m.name: (lambda m=m: archive.extractfile(m).read()) for m in archive.getmembers() if m.isfile()}
    else:
        raise HyperbenchError(f"{path} is neither a zip nor a tar archive", "give the dataset's archive or a folder holding its images")


def _select(members: dict, folders: tuple[str, ...]) -> dict[str, callable]:
    """Members that sit directly in one of `folders` (suffix match), keyed by file name."""
    chosen = {}
    for member, read in members.items():
        parent, _, base = member.rstrip("/").rpartition("/")
        if any(parent == f or parent.endswith("/" + f) for f in folders) and Path(base).suffix.lower() in IMAGE_SUFFIXES:
            chosen.setdefault(base, read)
    return chosen


def _folder_files(folder: Path) -> dict[str, callable]:
    return {p.name: (lambda p=p: p.read_bytes()) for p in list_images(folder)}


def _fill(spec: DatasetSpec, available: dict[str, callable], target: Path, origin: str) -> None:
    """Write the dataset's files from `available` ({file name: bytes reader}) into `target`."""
    converted = spec.converted()
    names = spec.expected_names() or sorted(available)
    missing = [n for n in names if n not in available and converted.get(n, {}).get("from") not in available]
    if missing:
        raise HyperbenchError(
            f"{origin} lacks {len(missing)} of the {len(names)} {spec.name} files (e.g. {', '.join(missing[:3])})",
            f"give the folder or archive that holds all {spec.name} images",
        )
    with progress_bar(f"extract {spec.name}", total=len(names), show_loss=False) as bar:
        for i, name in enumerate(names, 1):
            if name in available:
                (target / name).write_bytes(available[name]())
            else:  # published as BMP, stored as PNG: pixels are checked afterwards
                with Image.open(io.BytesIO(available[converted[name]["from"]]())) as im:
                    im.save(target / name, format="PNG")
            bar.update(i)


@contextmanager
def _staging(root: Path, name: str):
    """A temp folder next to <root>/<name>; renamed into place on success, removed on failure."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.tmp-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    target = root / name
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}.old-"))
        os.replace(target, old / name)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_and_record(spec: DatasetSpec, folder: Path, origin: str, archive_sha256: str | None) -> None:
    found = check_folder(spec, folder)
    if found["missing"] or found["corrupted"]:
        bad = found["corrupted"][:3] + found["missing"][:3]
        raise HyperbenchError(
            f"{spec.name} from {origin}: {len(found['corrupted'])} files do not match their sha256, "
            f"{len(found['missing'])} missing ({', '.join(bad)}); nothing was installed",
            "the copy is damaged or a different version of the dataset; fetch it again from the official source",
        )
    if spec.count is not None and len(list_images(folder)) != spec.count:
        raise HyperbenchError(
            f"{spec.name} from {origin} has {len(list_images(folder))} images, the dataset has {spec.count}; nothing was installed",
            "give the complete, original archive or folder",
        )
    if not spec.checksums():  # published without per-file checksums: record ours now (trust on first use)
        record = {
            "dataset": spec.name, "origin": origin, "archive_sha256": archive_sha256,
            "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "files": {p.name: sha256_file(p) for p in list_images(folder)},
        }
        (folder / RECORD_NAME).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- prepare


def prepare(name: str | DatasetSpec, root: Path, source: Path | None = None, keep_archive: bool = False,
            attempts: int = 3, timeout: float = 60.0, log=print):
    """Install a dataset under `root` from its official source or from `source` (a folder or an
    archive), check it, and return its verification report."""
    spec = name if isinstance(name, DatasetSpec) else get_dataset(name)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if spec.derived_from:
        from bench.data.subimages import ensure_subimages

        ensure_subimages(root, log=log)
        return verify(spec, root)
    if source is not None:
        _prepare_from_copy(spec, root, Path(source).expanduser(), log)
    else:
        _prepare_from_source(spec, root, keep_archive, attempts, timeout, log)
    return verify(spec, root)


def _prepare_from_copy(spec: DatasetSpec, root: Path, source: Path, log) -> None:
    if source.is_file():
        folders = spec.source.folders if spec.source else (spec.name,)
        with _staging(root, spec.name) as tmp, _archive_members(source) as members:
            _fill(spec, _select(members, folders), tmp, str(source))
            _check_and_record(spec, tmp, str(source), sha256_file(source))
        log(f"{spec.name}: imported from {source}")
        return
    if not source.is_dir():
        raise HyperbenchError(f"{source} does not exist", f"give a folder holding {spec.name}/ (or its images), or the dataset's archive")
    folder = source / spec.name if (source / spec.name).is_dir() else source
    target = root / spec.name
    if target.exists() and folder.resolve() == target.resolve():  # already in place: check it only
        if not spec.checksums() and not (target / RECORD_NAME).exists():
            _check_and_record(spec, target, str(folder), None)
        log(f"{spec.name}: already in place at {target}")
        return
    with _staging(root, spec.name) as tmp:
        _fill(spec, _folder_files(folder), tmp, str(folder))
        _check_and_record(spec, tmp, str(folder), None)
    log(f"{spec.name}: imported from {folder}")


def _prepare_from_source(spec: DatasetSpec, root: Path, keep_archive: bool, attempts: int, timeout: float, log) -> None:
    if spec.source is None:
        raise HyperbenchError(f"{spec.name} has no download source", f"use --from DIR with a local copy of {spec.name}")
    archive = root / DOWNLOADS / spec.source.archive_name
    downloaded = not archive.exists()
    if downloaded:
        log(f"{spec.name}: downloading {spec.source.url}")
        fetch(spec.source.url, archive, spec.source.sha256, attempts, timeout, label=spec.name)
    elif spec.source.sha256 and sha256_file(archive) != spec.source.sha256:
        archive.unlink()
        raise HyperbenchError(f"the kept archive {archive} does not match its published checksum; it was deleted", "run the command again to download it afresh")
    try:
        with _staging(root, spec.name) as tmp, _archive_members(archive) as members:
            _fill(spec, _select(members, spec.source.folders), tmp, spec.source.url)
            _check_and_record(spec, tmp, spec.source.url, sha256_file(archive))
    except HyperbenchError:
        if downloaded:  # a bad archive must not be reused by the next attempt
            archive.unlink(missing_ok=True)
            _remove_if_empty(archive.parent)
        raise
    shared = [s.name for s in DATASETS.values() if s is not spec and s.source and s.source.url == spec.source.url and not (root / s.name).is_dir()]
    if not (keep_archive or shared):
        archive.unlink(missing_ok=True)
        _remove_if_empty(archive.parent)
    else:
        why = f"it also holds {', '.join(shared)}" if shared else "--keep-archive"
        log(f"{spec.name}: archive kept at {archive} ({archive.stat().st_size / 1e6:.0f} MB; {why})")
    log(f"{spec.name}: installed at {root / spec.name}")
