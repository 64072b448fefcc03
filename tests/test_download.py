"""Downloads and prepare against a local HTTP server on 127.0.0.1 (Range support, truncation, corruption).

Archives are built here from generated PNGs; no traffic leaves the machine and every loop is bounded."""

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from bench.common.errors import HyperbenchError
from bench.data import checksums, datasets, download
from bench.data.datasets import DatasetSpec, Source
from bench.data.verify import verify


def _png(value: int, size=(24, 20)) -> bytes:
    rng = np.random.default_rng(value)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


FILES = {f"im{i}.png": _png(i) for i in range(3)}
SUMS = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}


def _zip(files: dict, top="Tiny-1.0/images") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{top}/README.txt", "not an image")
        z.writestr("Tiny-1.0/other/im0.png", _png(99))  # same name in another folder: must not be picked
        for name, data in files.items():
            z.writestr(f"{top}/{name}", data)
    return buf.getvalue()


def _tar(files: dict, top="Tiny-1.0/images") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.files; honours `Range: bytes=N-`; the first server.truncate responses stop halfway."""

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.truncate > 0:
            srv.truncate -= 1
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.requests, srv.truncate, srv.ranges = {}, [], 0, True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _spec(url: str, archive_sha256=None, files=SUMS, name="Tiny", count=3) -> DatasetSpec:
    return DatasetSpec(name, "test", "three generated images", count, "test data", "here", Source(url, ("images",), archive_sha256), files=files)


def _root_is_clean(root):
    return sorted(p.name for p in root.iterdir()) == []


def test_fetch_resumes_a_truncated_download_within_one_call(server, tmp_path):
    server.files["/big.bin"] = bytes(range(256)) * 4000
    server.truncate = 1
    dest = download.fetch(server.url + "/big.bin", tmp_path / "big.bin", hashlib.sha256(server.files["/big.bin"]).hexdigest(), timeout=5)
    assert dest.read_bytes() == server.files["/big.bin"]
    assert [r for _, r in server.requests] == [None, "bytes=512000-"]  # the second request continued where the first stopped
    assert not (tmp_path / "big.bin.part").exists()


def test_unfinished_download_keeps_its_part_and_the_next_call_resumes(server, tmp_path):
    data = bytes(range(256)) * 4000
    server.files["/big.bin"] = data
    server.truncate = 1
    with pytest.raises(HyperbenchError, match="did not finish after 1 attempts") as info:
        download.fetch(server.url + "/big.bin", tmp_path / "big.bin", attempts=1, timeout=5)
    assert "resumes from" in info.value.fix
    part = tmp_path / "big.bin.part"
    assert part.stat().st_size == len(data) // 2 and not (tmp_path / "big.bin").exists()
    download.fetch(server.url + "/big.bin", tmp_path / "big.bin", hashlib.sha256(data).hexdigest(), attempts=1, timeout=5)
    assert (tmp_path / "big.bin").read_bytes() == data
    assert server.requests[-1][1] == f"bytes={len(data) // 2}-"


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    data = bytes(range(256)) * 100
    server.files["/f.bin"], server.ranges = data, False
    (tmp_path / "f.bin.part").write_bytes(b"stale bytes from another file")
    download.fetch(server.url + "/f.bin", tmp_path / "f.bin", hashlib.sha256(data).hexdigest(), timeout=5)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_whole_part_file_is_accepted_on_416(server, tmp_path):
    data = b"x" * 1000
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    download.fetch(server.url + "/f.bin", tmp_path / "f.bin", hashlib.sha256(data).hexdigest(), timeout=5)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_http_errors_and_unreachable_hosts_are_clear(server, tmp_path):
    with pytest.raises(HyperbenchError, match="HTTP 404"):
        download.fetch(server.url + "/nothing.zip", tmp_path / "n.zip", timeout=5)
    with pytest.raises(HyperbenchError, match="did not finish"):  # nothing listens on port 9 of loopback
        download.fetch("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", attempts=2, timeout=2)
    with pytest.raises(HyperbenchError, match="cannot download"):
        download.fetch("notaurl", tmp_path / "y.zip")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_prepare_downloads_extracts_and_verifies(server, tmp_path, kind):
    archive = _zip(FILES) if kind == "zip" else _tar(FILES)
    server.files[f"/tiny.{kind}"] = archive
    root = tmp_path / "data"
    report = download.prepare(_spec(f"{server.url}/tiny.{kind}", hashlib.sha256(archive).hexdigest()), root, log=lambda *a: None)
    assert report.ok and report.present == 3
    assert {p.name: p.read_bytes() for p in (root / "Tiny").iterdir()} == FILES
    assert sorted(p.name for p in root.iterdir()) == ["Tiny"]  # archive deleted, no temp folders


def test_prepare_resumes_a_truncated_archive(server, tmp_path):
    archive = _zip(FILES)
    server.files["/tiny.zip"], server.truncate = archive, 1
    root = tmp_path / "data"
    spec = _spec(server.url + "/tiny.zip", hashlib.sha256(archive).hexdigest())
    with pytest.raises(HyperbenchError, match="did not finish"):
        download.prepare(spec, root, attempts=1, timeout=5, log=lambda *a: None)
    assert (root / ".downloads" / "tiny.zip.part").exists() and not (root / "Tiny").exists()
    assert download.prepare(spec, root, attempts=1, timeout=5, log=lambda *a: None).ok
    assert server.requests[-1][1] is not None and sorted(p.name for p in root.iterdir()) == ["Tiny"]


def test_corrupted_download_leaves_nothing(server, tmp_path):
    archive = _zip(FILES)
    server.files["/tiny.zip"] = archive[:-10] + b"0123456789"
    root = tmp_path / "data"
    with pytest.raises(HyperbenchError, match="does not match its published checksum") as info:
        download.prepare(_spec(server.url + "/tiny.zip", hashlib.sha256(archive).hexdigest()), root, log=lambda *a: None)
    assert "deleted" in info.value.problem
    assert _root_is_clean(root)


def test_wrong_file_inside_the_archive_leaves_nothing(server, tmp_path):
    server.files["/tiny.zip"] = _zip({**FILES, "im1.png": _png(42)})  # no archive checksum: per-file check must catch it
    root = tmp_path / "data"
    with pytest.raises(HyperbenchError, match=r"1 files do not match their sha256.*im1.png"):
        download.prepare(_spec(server.url + "/tiny.zip"), root, log=lambda *a: None)
    assert _root_is_clean(root)


def test_failed_prepare_keeps_the_installed_copy(server, tmp_path):
    root = tmp_path / "data"
    server.files["/tiny.zip"] = _zip(FILES)
    assert download.prepare(_spec(server.url + "/tiny.zip"), root, log=lambda *a: None).ok
    server.files["/tiny.zip"] = _zip({name: FILES[name] for name in ("im0.png", "im1.png")})
    with pytest.raises(HyperbenchError, match="lacks 1 of the 3"):
        download.prepare(_spec(server.url + "/tiny.zip"), root, log=lambda *a: None)
    assert verify(_spec("unused"), root).ok and sorted(p.name for p in root.iterdir()) == ["Tiny"]


def test_archive_only_sets_record_checksums_at_first_prepare(server, tmp_path):
    archive = _zip(FILES)
    server.files["/tiny.zip"] = archive
    root = tmp_path / "data"
    spec = DatasetSpec("Tiny", "train", "no per-file sums published", 3, "test", "here", Source(server.url + "/tiny.zip", ("images",)),
                       names=tuple(FILES))
    assert spec.checksum_kind.startswith("archive only")
    download.prepare(spec, root, log=lambda *a: None)
    record = checksums.read_record(root / "Tiny")
    assert record["files"] == SUMS and record["archive_sha256"] == hashlib.sha256(archive).hexdigest()
    assert verify(spec, root).checksums.startswith("recorded")
    (root / "Tiny" / "im2.png").write_bytes(_png(7))
    report = verify(spec, root)
    assert report.state == "problems" and report.corrupted == ["im2.png"]


def test_prepare_from_a_local_folder_and_archive(tmp_path):
    src = tmp_path / "copy" / "Tiny"
    src.mkdir(parents=True)
    for name, data in FILES.items():
        (src / name).write_bytes(data)
    (src / "notes.txt").write_text("ignored")
    spec = _spec("https://example.invalid/never-used.zip")
    root = tmp_path / "data"
    assert download.prepare(spec, root, source=tmp_path / "copy", log=lambda *a: None).ok  # a root holding Tiny/
    assert download.prepare(spec, root, source=src, log=lambda *a: None).ok  # the dataset folder itself
    assert download.prepare(spec, root, source=root / "Tiny", log=lambda *a: None).ok  # already in place: checked only
    (tmp_path / "tiny.zip").write_bytes(_zip(FILES))
    assert download.prepare(spec, tmp_path / "data2", source=tmp_path / "tiny.zip", log=lambda *a: None).ok
    (src / "im0.png").write_bytes(_png(5))
    with pytest.raises(HyperbenchError, match="do not match"):
        download.prepare(spec, tmp_path / "data3", source=src, log=lambda *a: None)
    assert _root_is_clean(tmp_path / "data3")
    with pytest.raises(HyperbenchError, match="does not exist"):
        download.prepare(spec, root, source=tmp_path / "nowhere", log=lambda *a: None)
    (tmp_path / "junk.bin").write_bytes(b"neither zip nor tar")
    with pytest.raises(HyperbenchError, match="neither a zip nor a tar"):
        download.prepare(spec, tmp_path / "data4", source=tmp_path / "junk.bin", log=lambda *a: None)
    assert _root_is_clean(tmp_path / "data4")


def test_bmp_published_sets_are_stored_as_png_and_checked_by_pixels(tmp_path, monkeypatch):
    pixels = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(pixels).save(src / "a.bmp")
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG", compress_level=9)  # some other encoder's bytes
    manifest = {"Conv": {"count": 1, "files": {"a.png": hashlib.sha256(png.getvalue()).hexdigest()},
                         "converted": {"a.png": {"from": "a.bmp", "pixels_sha256": checksums.array_sha256(pixels)}}}}
    monkeypatch.setattr(datasets, "manifest", lambda: manifest)
    spec = DatasetSpec("Conv", "test", "bmp source", 1, "test", "here", None)
    report = download.prepare(spec, tmp_path / "data", source=src, log=lambda *a: None)
    stored = tmp_path / "data" / "Conv" / "a.png"
    assert report.ok and checksums.sha256_file(stored) != manifest["Conv"]["files"]["a.png"]  # passed on its pixels
    Image.fromarray(pixels[::-1].copy()).save(stored)
    assert verify(spec, tmp_path / "data").corrupted == ["a.png"]
