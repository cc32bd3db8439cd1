"""Downloads that resume, retry, check their sha256 and only then appear under their name.

One file goes to ``<dest>.partial`` first. An interrupted transfer (dropped connection, short
body, timeout) continues from the bytes already there with an HTTP ``Range`` request (or a
seek, for ``gs://``), after a backoff that doubles each time; a server that ignores ``Range``
just sends the file again. When all bytes are in, the sha256 is compared with the manifest:
a match renames the partial file to ``dest`` (atomic on one filesystem), a mismatch discards
it and fetches the file once more from scratch before trying the next mirror. A file already
at ``dest`` with the right hash is not fetched again. Several files download in parallel
threads, with rich progress bars on a terminal.

HTTP uses ``requests`` (already a dependency of the docker SDK): a pooled Session, the system
proxy and CA settings, and urllib3's ``Retry`` for what urllib3 can retry by itself -- 429/5xx
answers and connections dropped before an answer, with backoff and ``Retry-After``. A body
that breaks off half way is beyond urllib3's retries; that is what the resume loop here is
for. Bodies are read with ``decode_content=False``: a server that labels a ``.gz`` file
``Content-Encoding: gzip`` must not have it unpacked before it is hashed.

A host that cannot be reached at all -- its name does not resolve, there is no route, the
connection is refused or times out -- is not retried with backoff: after one quick retry it
counts as unreachable for every file of the run and the next mirror is tried; when no source
of a file can be reached, :class:`Offline` says so in one line (the machine is most likely
offline). A connection that fails after the same transfer already reached its host is a
transient failure like a dropped body: retried with backoff, then resumed.

``gs://`` URLs are read with gcsfs (the optional ``gcs`` extra, imported only when needed).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import hashlib
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from algoperf.errors import UserError
from algoperf.hashing import file_sha256

CHUNK = 1 << 20
STATUS_RETRY = (429, 500, 502, 503, 504)
PARTIAL_SUFFIX = ".partial"
QUICK_RETRY = 0.5  # seconds before the one retry of a host that could not be reached


@dataclasses.dataclass(frozen=True)
class Options:
    """How hard to try: ``retries`` per source and file, the first backoff in seconds
    (doubling, capped at ``max_backoff``), the socket timeout (``connect_timeout`` for
    establishing a connection), and parallel downloads."""

    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    timeout: float = 60.0
    jobs: int = 4
    connect_timeout: float = 10.0


@dataclasses.dataclass(frozen=True)
class Job:
    """One file to fetch from the first of ``urls`` that delivers the right bytes."""

    urls: tuple[str, ...]
    dest: Path
    size: int
    sha256: str


class _Transient(Exception):
    """A failure worth retrying from where the transfer stopped."""


class _SourceFailed(Exception):
    """This source cannot deliver the file (404, wrong size, ...): try the next one."""


class _Unreachable(Exception):
    """The source's host cannot be reached at all (no such name, no route, refused)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"cannot connect to {host} ({reason})")
        self.host, self.reason = host, reason


class Offline(UserError):
    """No source of a file could be reached: ``hosts`` maps each host to why not."""

    def __init__(self, filename: str, hosts: dict[str, str]) -> None:
        self.filename, self.hosts = filename, dict(hosts)
        super().__init__(f"could not download {filename}: cannot connect to "
                         f"{describe_hosts(hosts)}; this machine seems to be offline. Pass "
                         "--source URL of a mirror it can reach, or fetch the files elsewhere "
                         "and prepare them with --raw-dir")


def describe_hosts(hosts: dict[str, str]) -> str:
    """``a, b (name resolution failed), c (connection refused)``: hosts grouped by reason."""
    by_reason: dict[str, list[str]] = {}
    for host, reason in hosts.items():
        by_reason.setdefault(reason, []).append(host)
    return ", ".join(f"{', '.join(names)} ({reason})" for reason, names in by_reason.items())


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


class Stopped(Exception):
    """Another download of the same set failed, so this one stopped (its bytes are kept)."""


class ChecksumMismatch(Exception):
    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(f"{url} delivered bytes with sha256 {actual[:16]}..., the manifest "
                         f"says {expected[:16]}...")


def _delay(options: Options, attempt: int) -> float:
    return min(options.backoff * 2 ** attempt, options.max_backoff)


# Sources: each opens a byte stream of one URL starting at an offset.

class _Http:
    def __init__(self, options: Options) -> None:
        import requests
        from urllib3.util import Retry

        self._requests = requests
        # connect=0: a host that cannot be reached is not retried here, with backoff and a
        # warning each time; Fetcher retries it once, quickly (see the module docstring).
        retry = Retry(total=options.retries, connect=0, read=options.retries,
                      status=options.retries, backoff_factor=options.backoff,
                      backoff_max=options.max_backoff, status_forcelist=STATUS_RETRY,
                      allowed_methods=frozenset({"GET"}), raise_on_status=False,
                      respect_retry_after_header=True)
        self._local = threading.local()
        self._adapter_args = dict(max_retries=retry, pool_maxsize=max(options.jobs, 1))
        self._timeout = (options.connect_timeout, options.timeout)

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            from requests.adapters import HTTPAdapter

            session = self._requests.Session()
            adapter = HTTPAdapter(**self._adapter_args)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self._local.session = session
        return session

    @contextlib.contextmanager
    def open(self, url: str, offset: int, size: int) -> Iterator[tuple[int, Iterator[bytes]]]:
        """Yields (offset the bytes start at, chunks); the start is 0 if Range was ignored."""
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        exc = self._requests.exceptions
        try:
            response = self._session().get(url, headers=headers, stream=True,
                                           timeout=self._timeout)
        except (exc.ConnectionError, exc.Timeout) as e:
            unreachable = _unreachable_reason(e)
            if unreachable is not None:
                raise _Unreachable(_host(url), unreachable) from None
            raise _SourceFailed(f"cannot connect ({_reason(e)})") from None
        except exc.RequestException as e:
            raise _SourceFailed(f"{type(e).__name__}: {e}") from None
        with response:
            start = self._start_of(response, offset, size)
            yield start, self._chunks(response)

    def _start_of(self, response, offset: int, size: int) -> int:
        status = response.status_code
        if status == 206:
            content_range = response.headers.get("Content-Range", "")
            try:
                first = int(content_range.split()[1].split("-")[0])
            except (IndexError, ValueError):
                raise _Transient(f"unreadable Content-Range {content_range!r}") from None
            if first != offset:
                raise _Transient(f"asked for bytes from {offset}, got them from {first}")
            return offset
        if status == 200:
            length = response.headers.get("Content-Length")
            if length is not None and int(length) != size:
                raise _SourceFailed(f"serves {int(length):,} bytes, the manifest says "
                                    f"{size:,}")
            return 0
        if status == 416:  # the partial file is longer than what the server has
            return -1
        if status in STATUS_RETRY:
            raise _SourceFailed(f"HTTP {status} {response.reason} after retries")
        raise _SourceFailed(f"HTTP {status} {response.reason}")

    def _chunks(self, response) -> Iterator[bytes]:
        exc = self._requests.exceptions
        import urllib3.exceptions

        try:
            yield from response.raw.stream(CHUNK, decode_content=False)
        except (exc.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            raise _Transient(f"transfer broke off ({_reason(e)})") from None


class _Gcs:
    """``gs://bucket/object`` through gcsfs; credentials as gcsfs finds them, or the token
    method named by ``ALGOPERF_GCS_TOKEN`` (e.g. ``anon`` for public buckets)."""

    def __init__(self, options: Options) -> None:
        try:
            # The plain JSON-API filesystem: reading whole objects needs nothing more, and
            # gcsfs's experimental default class first probes the bucket's layout over gRPC.
            from gcsfs.core import GCSFileSystem
        except ImportError:
            raise UserError("gs:// sources need gcsfs; install it with: "
                            "pip install 'algoperf[gcs]'") from None
        self._fs = GCSFileSystem(token=os.environ.get("ALGOPERF_GCS_TOKEN") or None,
                                       retries=options.retries)

    @contextlib.contextmanager
    def open(self, url: str, offset: int, size: int) -> Iterator[tuple[int, Iterator[bytes]]]:
        try:
            actual = self._fs.size(url)
        except FileNotFoundError:
            raise _SourceFailed("no such object") from None
        except Exception as e:  # noqa: BLE001 - gcsfs raises many kinds (auth, HTTP, aiohttp)
            raise _SourceFailed(f"{type(e).__name__}: {e}") from None
        if actual != size:
            raise _SourceFailed(f"object has {actual:,} bytes, the manifest says {size:,}")
        if offset > size:
            yield -1, iter(())
            return
        f = self._fs.open(url, "rb", block_size=CHUNK * 8)
        with f:
            f.seek(offset)
            yield offset, self._chunks(f)

    @staticmethod
    def _chunks(f) -> Iterator[bytes]:
        while True:
            try:
                chunk = f.read(CHUNK)
            except Exception as e:  # noqa: BLE001
                raise _Transient(f"read failed ({type(e).__name__}: {e})") from None
            if not chunk:
                return
            yield chunk


_ERRNO_REASONS = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "no route to host",
                  errno.ENETUNREACH: "network unreachable", errno.ETIMEDOUT: "connection timed out"}


def _unreachable_reason(e: BaseException) -> str | None:
    """Why a requests exception means the host could not be reached at all (None when the
    connection was made and broke later)."""
    import requests.exceptions
    import urllib3.exceptions as ux

    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    inner = e.args[0] if e.args else None
    if isinstance(inner, ux.MaxRetryError):
        inner = inner.reason
    if isinstance(inner, ux.ProxyError) and inner.args:
        inner = inner.args[-1]  # the proxy's own connection failure
    if isinstance(inner, ux.NameResolutionError):
        return "name resolution failed"
    if isinstance(inner, ux.NewConnectionError):
        cause = inner.__cause__
        code = getattr(cause, "errno", None)
        return _ERRNO_REASONS.get(code) or (getattr(cause, "strerror", None) or
                                            "no connection").lower()
    if isinstance(inner, ux.ConnectTimeoutError):
        return "connection timed out"
    return None


def _reason(e: BaseException) -> str:
    """The innermost useful words of a requests/urllib3 exception chain."""
    text = str(e)
    for marker in ("Connection refused", "Name or service not known", "timed out",
                   "IncompleteRead", "Connection reset", "Connection broken"):
        if marker in text:
            return marker
    return text[:120] or type(e).__name__


# Fetching one file.

class Fetcher:
    """Fetches jobs with ``options``; ``on_bytes(job, n)`` reports progress (n may be
    negative when a transfer restarts from zero)."""

    def __init__(self, options: Options = Options(),
                 on_bytes: Callable[[Job, int], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self._on_bytes = on_bytes or (lambda job, n: None)
        self._sleep = sleep
        self._sources: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._unreachable: dict[str, str] = {}  # host -> why, for every file of this run

    def stop(self) -> None:
        """Makes every transfer in progress end at its next chunk, keeping its partial file."""
        self._stop.set()

    def _source(self, url: str):
        scheme = "gs" if url.startswith("gs://") else "http"
        with self._lock:
            if scheme not in self._sources:
                self._sources[scheme] = _Gcs(self.options) if scheme == "gs" else _Http(
                    self.options)
            return self._sources[scheme]

    def fetch(self, job: Job) -> str:
        """Makes ``job.dest`` hold the file; returns 'present' or 'downloaded'."""
        if job.dest.exists():
            if job.dest.stat().st_size == job.size and file_sha256(job.dest) == job.sha256:
                self._on_bytes(job, job.size)
                return "present"
            job.dest.unlink()  # not what the manifest says: fetch it again
        partial = job.dest.with_name(job.dest.name + PARTIAL_SUFFIX)
        failures, unreachable = [], {}
        for url in job.urls:
            host = _host(url)
            with self._lock:
                known = self._unreachable.get(host)
            if known is not None:  # another file of this run found it unreachable
                unreachable[host] = known
                failures.append((url, f"cannot connect ({known})"))
                continue
            try:
                self._fetch_from(url, job, partial)
                return "downloaded"
            except _Unreachable as e:
                with self._lock:
                    self._unreachable.setdefault(e.host, e.reason)
                unreachable[e.host] = e.reason
                failures.append((url, f"cannot connect ({e.reason})"))
            except (_SourceFailed, ChecksumMismatch) as e:
                failures.append((url, str(e)))
        if failures and len(unreachable) == len(failures):
            raise Offline(job.dest.name, unreachable)
        raise _failure_error(job, failures)

    def _fetch_from(self, url: str, job: Job, partial: Path) -> None:
        """Up to two complete transfers from ``url``: the second only after a mismatch."""
        for transfer in range(2):
            digest = self._transfer(url, job, partial)
            if digest == job.sha256:
                os.replace(partial, job.dest)
                return
            partial.unlink()
            self._on_bytes(job, -job.size)
            if transfer == 1:
                raise ChecksumMismatch(url, job.sha256, digest)

    def _transfer(self, url: str, job: Job, partial: Path) -> str:
        """Fills ``partial`` with all ``job.size`` bytes, resuming; returns their sha256,
        computed as the bytes arrive (the bytes already on disk are hashed once)."""
        source = self._source(url)
        hashed = _PrefixHash()
        attempt = 0
        connected = quick_retried = False
        while True:
            have = partial.stat().st_size if partial.exists() else 0
            if have == job.size:
                return hashed.at(partial, have).hexdigest()
            if have > job.size:  # not this file: start over
                self._restart(job, partial, have)
                continue
            try:
                with source.open(url, have, job.size) as (start, chunks):
                    connected = True
                    if start < 0:  # the server has fewer bytes than the partial file
                        self._restart(job, partial, have)
                        continue
                    if start < have:  # the server ignored Range and sends everything
                        self._restart(job, partial, have)
                    self._write(job, partial, chunks, start, hashed.at(partial, start))
                if partial.stat().st_size < job.size:
                    raise _Transient("the server closed the connection early")
            except (_Transient, _Unreachable) as e:
                if isinstance(e, _Unreachable) and not connected:
                    # Never reached in this transfer: one quick retry, then the next source.
                    if quick_retried or self._known_unreachable(e.host):
                        raise
                    quick_retried = True
                    self._sleep(min(self.options.backoff, QUICK_RETRY))
                    continue
                # Broke off, or the host answered before in this transfer: back off, resume.
                if attempt >= self.options.retries:
                    raise _SourceFailed(
                        f"transfer kept breaking off ({attempt + 1} attempts)") from None
                self._sleep(_delay(self.options, attempt))
                attempt += 1

    def _known_unreachable(self, host: str) -> bool:
        with self._lock:
            return host in self._unreachable

    def _restart(self, job: Job, partial: Path, have: int) -> None:
        with open(partial, "wb"):
            pass
        self._on_bytes(job, -have)

    def _write(self, job: Job, partial: Path, chunks: Iterator[bytes], start: int,
               hashed: _PrefixHash) -> None:
        written = start
        try:
            with open(partial, "ab") as f:
                for chunk in chunks:
                    if self._stop.is_set():
                        raise Stopped()
                    if written + len(chunk) > job.size:
                        raise _SourceFailed(f"sends more than the {job.size:,} bytes the "
                                            "manifest says")
                    f.write(chunk)
                    hashed.update(chunk)
                    written += len(chunk)
                    self._on_bytes(job, len(chunk))
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise UserError(
                    f"disk full while downloading {job.dest.name} into {job.dest.parent} "
                    f"({written:,} of {job.size:,} bytes kept in "
                    f"{job.dest.name}{PARTIAL_SUFFIX}); free space and run the same command "
                    "again to resume") from None
            raise


class _PrefixHash:
    """The running sha256 of a partial file's first ``length`` bytes."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.length = 0

    def at(self, path: Path, length: int) -> _PrefixHash:
        """Makes this the hash of ``path``'s first ``length`` bytes (re-reading only when the
        bytes hashed so far are not exactly those)."""
        if length != self.length:
            self._digest, self.length = hashlib.sha256(), 0
            with open(path, "rb") as f:
                while self.length < length:
                    chunk = f.read(min(CHUNK, length - self.length))
                    if not chunk:
                        break
                    self.update(chunk)
        return self

    def update(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.length += len(chunk)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _failure_error(job: Job, failures: list[tuple[str, str]]) -> UserError:
    if not failures:
        return UserError(f"no source to download {job.dest.name} from; pass --source URL")
    mismatch = [f for f in failures if "sha256" in f[1]]
    if mismatch:
        url, reason = mismatch[-1]
        return UserError(f"checksum mismatch for {job.dest.name}: {reason}; nothing was kept. "
                         "The source serves different bytes than the manifest expects: use "
                         "another --source, or check the manifest")
    tried = "; ".join(f"{url}: {reason}" for url, reason in failures)
    return UserError(f"could not download {job.dest.name} ({tried}); check the network or "
                     "pass --source URL of a mirror")


# Many files at once.

def fetch_all(jobs: list[Job], options: Options, label: str) -> dict[Path, str]:
    """Fetches ``jobs`` in parallel with progress on stderr; returns dest -> outcome.

    The first failure stops the others (their partial files stay, to resume) and is raised.
    """
    from algoperf.datasets.progress import DownloadProgress

    with DownloadProgress(label, jobs) as progress:
        fetcher = Fetcher(options, on_bytes=progress.advance)
        with concurrent.futures.ThreadPoolExecutor(max(1, options.jobs)) as pool:
            futures = {pool.submit(fetcher.fetch, job): job for job in jobs}
            outcomes = {}
            try:
                for future in concurrent.futures.as_completed(futures):
                    job = futures[future]
                    outcomes[job.dest] = future.result()
                    progress.finished(job, outcomes[job.dest])
            except BaseException:
                fetcher.stop()
                for future in futures:
                    future.cancel()
                raise
    return outcomes
