"""The run seal: the organizer's signature over a finished trial directory.

After a run, the host-side orchestrator (``algoperf docker run``) signs, per trial directory, an
in-toto Statement whose subjects are every file in the directory with its sha256 (the run
manifest) and whose predicate names the final chain head of ``events.jsonl``, the trial's
place in the experiment tree, and what the host itself knows about the run (image id,
lockfile hash, submission hash, hardware digest). It is written as a DSSE envelope to
``seal.dsse.json`` beside the files it covers. Any later change to a file, an added or removed
file, a truncated or extended log, or a trial directory moved elsewhere disagrees with it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from algoperf.logs.atomic import write_atomic
from algoperf.logs.events import EVENTS_FILENAME
from algoperf.verification import dsse, statement
from algoperf.verification.digests import manifest
from algoperf.verification.eventlog import scan
from algoperf.verification.keys import SigningKey, TrustedKeys

SEAL_FILENAME = "seal.dsse.json"


def trial_identity(trial_dir: Path) -> dict[str, str]:
    """Where a trial sits: ``<experiment>/<study>/<workload>_<framework>/<trial>``."""
    parts = trial_dir.resolve().parts
    return {"experiment": parts[-4], "study": parts[-3], "workload_dir": parts[-2],
            "trial": parts[-1]}


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def seal_trial(trial_dir: str | os.PathLike, key: SigningKey,
               run: Mapping[str, Any] | None = None) -> Path:
    """Signs ``trial_dir``'s manifest and chain head with ``key``; returns the seal's path.

    ``run``: facts the orchestrator vouches for (image id, lockfile sha256, submission
    sha256, ...), recorded as given. An existing seal is replaced: the newest covers all.
    """
    trial_dir = Path(trial_dir)
    log = scan(trial_dir / EVENTS_FILENAME)
    files = manifest(trial_dir, exclude=frozenset({SEAL_FILENAME}),
                     known={EVENTS_FILENAME: log.sha256})
    predicate = {
        "events": {"file": EVENTS_FILENAME, "head": log.head, "lines": len(log.line_hashes),
                   "sha256": log.sha256},
        "trial": trial_identity(trial_dir),
        "run": dict(run or {}),
        "sealed_at": utc_now(),
        "sealer": _sealer(),
    }
    payload = statement.statement_bytes(statement.statement(files, statement.SEAL, predicate))
    return write_atomic(trial_dir / SEAL_FILENAME,
                        dsse.envelope_bytes(dsse.sign_envelope(payload, key)))


def _sealer() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return {"name": "algoperf", "version": version("algoperf")}
    except PackageNotFoundError:
        return {"name": "algoperf", "version": "unknown"}


@dataclasses.dataclass(frozen=True)
class Seal:
    """A seal whose signature verified: its manifest, its predicate and who signed it."""

    files: dict[str, str]
    predicate: dict[str, Any]
    keyid: str


def open_seal(data: bytes, trusted: TrustedKeys) -> Seal:
    """The verified content of a seal file. Raises ValueError (EnvelopeError for signature
    problems) naming what is wrong."""
    payload, keyid = dsse.open_envelope(data, trusted)
    files, predicate = statement.parse_statement(payload, statement.SEAL)
    events = predicate.get("events")
    if (not isinstance(events, dict) or not isinstance(events.get("head"), str)
            or not isinstance(events.get("lines"), int)):
        raise ValueError("the seal's predicate has no events head and line count")
    if not isinstance(predicate.get("trial"), dict):
        raise ValueError("the seal's predicate does not name its trial")
    return Seal(files, predicate, keyid)
