"""Signing a sandboxed run on the host: what ``algoperf docker run`` does around its container.

`signed_run` wraps the container's life: before it starts, a `Witness` begins reading the run
directory's event logs from a host thread; when it has exited (or was stopped), each trial
directory gets the witness's signed record (with the hardware samples the host took, when
given its `HostSamples`) and then the organizer's seal over its files and final chain head,
with what the host itself knows about the run (`run_facts`). The key is read
on the host only, and refused if it lies inside anything mounted into the container.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from algoperf.errors import UserError
from algoperf.hardware.sampling import HostSamples
from algoperf.verification.keys import load_signing_key
from algoperf.verification.seal import seal_trial
from algoperf.verification.witness import Witness

SIGNING_KEY_ENV = "ALGOPERF_SIGNING_KEY"


def run_facts(image_id: str, lockfile_sha256: str, submission: Path, framework: str,
              data_dir: Path | None = None, workload: str | None = None) -> dict[str, Any]:
    """What the host vouches for in each seal: the image and lockfile it started, the source
    hash of the submission it mounted and the root hash of the prepared dataset it mounted
    (both read on the host, not reported by the run)."""
    from algoperf.datasets import recorded_root
    from algoperf.submission import resolve_path, source_digest
    from algoperf.workloads import registry

    facts = {"image_id": image_id, "lockfile_sha256": lockfile_sha256,
             "submission_sha256": source_digest(resolve_path(submission, framework))}
    if data_dir is not None and workload is not None:
        facts["dataset_manifest_root"] = recorded_root(
            data_dir, registry.get_workload(workload).dataset)
    return facts


def _check_key_location(key: Path, mounted: Sequence[Path]) -> None:
    resolved = key.expanduser().resolve()
    for source in mounted:
        source = Path(source).resolve()
        if resolved == source or resolved.is_relative_to(source):
            raise UserError(f"the signing key {key} is inside {source}, which the container "
                            "can read; keep the key outside every mounted folder")


@contextlib.contextmanager
def signed_run(key_path: str | os.PathLike, run_dir: Path, mounted: Sequence[Path],
               facts: dict[str, Any], echo: Callable[[str], None] = print,
               samples: HostSamples | None = None) -> Iterator[Witness]:
    """Witnesses ``run_dir`` for the block's length, then signs and seals its trials.

    ``mounted``: every host path the container sees (the key must be outside all of them).
    ``samples``: the host's hardware samples of the run, signed into the witness records.
    Signing happens even when the block raises (a stopped run is sealed as it stands);
    verification then reports what is missing, such as the run_end of an interrupted trial.
    """
    key_path = Path(key_path)
    _check_key_location(key_path, mounted)
    key = load_signing_key(key_path)
    witness = Witness(run_dir, observer={"role": "algoperf docker run",
                                         "image_id": facts.get("image_id")},
                      samples=samples).start()
    try:
        yield witness
    finally:
        witness.stop()
        records = witness.sign(key)
        seals = [seal_trial(trial, key, facts) for trial in witness.trial_dirs]
        echo(f"witnessed and sealed {len(seals)} trial(s) with key {key.id[:16]} "
             f"({len(records)} witness record(s))")
