"""What the checks of one trial share: where it is, its scanned event log, and the options."""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from algoperf.logs import events as ev
from algoperf.verification.eventlog import ScannedLog
from algoperf.verification.keys import TrustedKeys
from algoperf.verification.tables import ExpectedTable, expected_eval_table
from algoperf.verification.witness import WitnessRecord, open_witness, witness_files

DEFAULT_WITNESS_ABS_TOL = 1.0  # seconds
DEFAULT_WITNESS_REL_TOL = 0.01


@dataclasses.dataclass(frozen=True)
class Options:
    """How to verify (picklable: worker processes receive it).

    ``lockfile_sha256s``: the sha256 of every lockfile the image may have been built from
    (None: unknown, not checked). ``submission_sha256``: the source hash the runs must have
    (from --submission; None: not checked). ``witness_*_tol``: how far the run's claimed
    durations may be from the witness's receive times (absolute seconds plus a fraction of the
    interval). ``data_dir``: prepared datasets whose content manifests the runs' dataset roots
    must match (None: not compared).
    """

    trusted: TrustedKeys = TrustedKeys({})
    reference: str | None = None
    lockfile_sha256s: frozenset[str] | None = None
    submission_sha256: str | None = None
    witness_abs_tol: float = DEFAULT_WITNESS_ABS_TOL
    witness_rel_tol: float = DEFAULT_WITNESS_REL_TOL
    data_dir: Path | None = None  # the auditor's prepared datasets, to compare roots with


@dataclasses.dataclass
class Trial:
    """One trial directory with events, as the checks see it."""

    root: Path
    path: Path
    log: ScannedLog
    options: Options
    table: ExpectedTable = dataclasses.field(init=False)
    rel: str = dataclasses.field(init=False)  # the trial's path relative to the root
    events_name: str = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.table = expected_eval_table(self.log.records)
        rel = self.path.relative_to(self.root).as_posix()
        self.rel = "" if rel == "." else rel
        self.events_name = self.name(ev.EVENTS_FILENAME)

    def name(self, file: str) -> str:
        """``file`` of this trial, as reports name it (relative to the verified root)."""
        return f"{self.rel}/{file}" if self.rel else file

    @property
    def starts(self) -> list[tuple[int, dict[str, Any]]]:
        """The run_start and resume records: one per process that ran the trial."""
        return self.log.records_of(ev.RUN_START, ev.RESUME)

    @property
    def run_start(self) -> tuple[int, dict[str, Any]] | None:
        found = self.log.records_of(ev.RUN_START)
        return found[-1] if found else None

    @property
    def start_data(self) -> dict[str, Any]:
        """The data of the last run_start ({} without one)."""
        return self.run_start[1]["data"] if self.run_start else {}

    @property
    def run_end(self) -> tuple[int, dict[str, Any]] | None:
        if self.log.records and self.log.records[-1][1]["type"] == ev.RUN_END:
            return self.log.records[-1]
        return None

    @functools.cached_property
    def witnesses(self) -> tuple[list[WitnessRecord], list[tuple[str, str]]]:
        """The witness records whose signatures verified, and (name, reason) for each that
        did not; opened once for the checks that read them (none without trusted keys)."""
        opened, bad = [], []
        if not self.options.trusted:
            return opened, bad
        for path in witness_files(self.path):
            name = self.name(path.name)
            try:
                opened.append(open_witness(name, path.read_bytes(), self.options.trusted))
            except (OSError, ValueError) as e:
                bad.append((name, str(e)))
        return opened, bad

    def read_json(self, file: str) -> tuple[Any, str | None]:
        """(content, problem) of a JSON file of the trial; (None, None) when it is absent."""
        return read_json_file(self.path / file)


def read_json_file(path: Path) -> tuple[Any, str | None]:
    """(content, problem) of a JSON file; (None, None) when it is absent."""
    try:
        return json.loads(path.read_bytes()), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as e:
        return None, f"not readable as JSON ({e})"
