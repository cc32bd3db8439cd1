"""A real HTTP server on 127.0.0.1 with faults the tests control, and dataset fixtures in the
real formats (MNIST IDX gzip files, the CIFAR-10 python tar.gz), shared by the dataset tests
and benchmarks/dataset_throughput.py.

The server answers GET and HEAD, honours single ``Range: bytes=N-`` / ``bytes=N-M`` requests
with 206 and ``Content-Range``, and records every request. Faults are queued per path and
each is used by one request: an HTTP status, a body cut off after some bytes (the connection
is closed mid-body), corrupted bytes, ignoring Range, or a callback run before answering.
It also speaks the two calls of Google Cloud Storage's JSON API that gcsfs makes to read an
object (metadata and ``alt=media`` download), so ``gs://`` sources run against it through
``STORAGE_EMULATOR_HOST``.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import hashlib
import io
import json
import pickle
import tarfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from algoperf.datasets import content
from algoperf.datasets import mnist as mnist_data

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_LABELS = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
                b"horse", b"ship", b"truck"]


@dataclasses.dataclass
class Fault:
    status: int | None = None  # answer with this status and no body
    cut_after: int | None = None  # send this many body bytes, then drop the connection
    corrupt: bool = False  # flip bytes in the body
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    before: object = None  # a callable run before answering


@dataclasses.dataclass(frozen=True)
class Downloaded:
    """A module's one download from the fixture server: where it went, the content manifest
    it wrote, and the Range headers the server saw (a resumed transfer sends one)."""

    data_dir: Path
    result: content.ContentManifest
    ranges: list[str | None]


class FixtureServer:
    """Serves ``files`` ({url path: bytes or Path}) on 127.0.0.1 in a background thread, on
    ``port`` (default: a free one)."""

    def __init__(self, files: dict[str, bytes | Path] | None = None, port: int = 0) -> None:
        self.files: dict[str, bytes | Path] = dict(files or {})
        self.faults: dict[str, collections.deque[Fault]] = collections.defaultdict(
            collections.deque)
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_fault(self, path: str, fault: Fault) -> None:
        self.faults[path].append(fault)

    def requests_for(self, path: str) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[1] == path]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(path)
            return queue.popleft() if queue else None

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                path, query = parsed.path, urllib.parse.parse_qs(parsed.query)
                with server._lock:
                    server.requests.append((self.command, path, self.headers.get("Range")))
                if path.startswith("/storage/v1/b/"):
                    return self._gcs_metadata(path)
                if path.startswith("/download/storage/v1/b/"):
                    bucket, _, obj = path.removeprefix("/download/storage/v1/b/").partition("/o/")
                    path = "/gs/" + bucket + "/" + urllib.parse.unquote(obj)
                    if query.get("alt") != ["media"]:
                        return self._status(400)
                fault = server._take_fault(path)
                if fault is not None and fault.before is not None:
                    fault.before()
                if fault is not None and fault.status is not None:
                    return self._status(fault.status)
                body = server.files.get(path)
                if body is None:
                    return self._status(404)
                size = body.stat().st_size if isinstance(body, Path) else len(body)
                start, end = 0, size - 1
                range_header = self.headers.get("Range")
                partial = range_header is not None and not (fault and fault.ignore_range)
                if partial:
                    first, _, last = range_header.removeprefix("bytes=").partition("-")
                    start = int(first)
                    end = int(last) if last else size - 1
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                length = end - start + 1
                self.send_response(206 if partial else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(length))
                self.send_header("Accept-Ranges", "bytes")
                if partial:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.end_headers()
                if head:
                    return
                if fault is None and isinstance(body, Path):
                    with open(body, "rb") as f:  # the fast path: zero-copy from the file
                        self.connection.sendfile(f, offset=start, count=length)
                    return
                data = body.read_bytes() if isinstance(body, Path) else body
                data = data[start:end + 1]
                if fault is not None and fault.corrupt:
                    data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                if fault is not None and fault.cut_after is not None:
                    self.wfile.write(data[:fault.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data)

            def _status(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _gcs_metadata(self, path: str) -> None:
                bucket, _, obj = path.removeprefix("/storage/v1/b/").partition("/o/")
                name = urllib.parse.unquote(obj)
                body = server.files.get(f"/gs/{bucket}/{name}")
                if body is None:
                    payload = json.dumps({"error": {"code": 404, "message": "Not Found"}})
                    self.send_response(404)
                else:
                    data = body.read_bytes() if isinstance(body, Path) else body
                    payload = json.dumps({
                        "kind": "storage#object", "bucket": bucket, "name": name,
                        "size": str(len(data)), "generation": "1", "metageneration": "1",
                        "contentType": "application/octet-stream",
                        "updated": "2024-01-01T00:00:00.000Z",
                        "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode()})
                    self.send_response(200)
                encoded = payload.encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

        return Handler


# Fixtures in the real formats.

def mnist_files(num_train: int = 60_000, num_test: int = 10_000) -> dict[str, bytes]:
    """The four MNIST files of synthetic images, as bytes."""
    return mnist_data.synthetic_files(num_train, num_test)


def cifar_images(count: int, seed: int, noise: bool = False) -> tuple[np.ndarray, list[int]]:
    """``count`` images as CIFAR rows (uint8 (N, 3072), R, G, B planes) and labels: a
    class-coloured square on a dark background (or on random pixels, which compress as badly
    as photographs, with ``noise``), the index in the first pixels."""
    random = np.random.RandomState(seed)
    labels = random.randint(0, 10, count)
    images = np.zeros((count, 3, 32, 32), np.uint8)
    if noise:
        images[:] = random.randint(0, 256, images.shape, dtype=np.uint8)
    for label in range(10):
        rows = labels == label
        images[rows, label % 3, 8:24, 8:24] = 60 + 19 * label
    index = np.arange(count)
    for byte in range(3):
        images[:, 0, 0, byte] = (index >> (8 * byte)) & 0xFF
    return images.reshape(count, 3072), labels.tolist()


def _pickled(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def cifar_archive(path: Path, per_batch: int, num_test: int, extra: dict[str, bytes] | None = None,
                  compresslevel: int = 1, noise: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Writes a CIFAR-10 python tar.gz with ``per_batch`` images in each of the five training
    batches and ``num_test`` test images; returns all train and test rows' labels."""
    members = {}
    train_labels = []
    for i in range(1, 6):
        data, labels = cifar_images(per_batch, seed=i, noise=noise)
        data[:, 1] = i  # batch number, so batch order is visible
        members[f"data_batch_{i}"] = _pickled({
            b"batch_label": f"training batch {i} of 5".encode(), b"labels": labels,
            b"data": data, b"filenames": [b"img_%d.png" % k for k in range(per_batch)]})
        train_labels += labels
    data, test_labels = cifar_images(num_test, seed=0, noise=noise)
    members["test_batch"] = _pickled({b"batch_label": b"testing batch 1 of 1",
                                      b"labels": test_labels, b"data": data,
                                      b"filenames": [b"t_%d.png" % k for k in range(num_test)]})
    members["batches.meta"] = _pickled({b"num_cases_per_batch": per_batch,
                                        b"label_names": CIFAR_LABELS, b"num_vis": 3072})
    members["readme.html"] = b"<html>fixture</html>"
    with tarfile.open(path, "w:gz", compresslevel=compresslevel) as tar:
        info = tarfile.TarInfo(CIFAR_FOLDER)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        for name, payload in {**members, **(extra or {})}.items():
            info = tarfile.TarInfo(name if name.startswith(("/", ".")) or "/" in name
                                   else f"{CIFAR_FOLDER}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return np.asarray(train_labels, np.uint8), np.asarray(test_labels, np.uint8)


def write_manifest(path: Path, name: str, files: dict[str, bytes | Path], mirrors: list[str],
                   prepared_bytes: int = 0, scratch_bytes: int = 0, **extra) -> Path:
    """A dataset manifest for fixture files (their real sizes and sha256)."""
    entries = []
    for filename, body in files.items():
        data = body.read_bytes() if isinstance(body, Path) else body
        entries.append({"name": filename, "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"name": name, "title": f"{name} test fixture", "workloads": [],
                "license": "test fixture", "mirrors": mirrors, "files": entries,
                "prepared_bytes": prepared_bytes, "scratch_bytes": scratch_bytes,
                "implemented": True, **extra}
    path.write_text(json.dumps(manifest, indent=1))
    return path
