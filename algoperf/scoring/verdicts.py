"""The verification verdict of the signed runs a report covers (``algoperf verify``'s checks).

A run directory holding any sealed trial (``seal.dsse.json``, written by `algoperf docker run`
or a witnessed sweep) is verified as ``algoperf verify`` would, with the given trusted keys;
without a key a sealed run is "not certifiable", and the page says why. Unsigned runs
(AlgoPerf's published logs, plain ``algoperf run``) are not verified here: their verdict
could only be "not certifiable" or "legacy, unsigned", which the page states in a line.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Finding:
    """One distinct reason a check did not pass, with how many trials (or tree checks) gave
    it."""

    check: str
    status: str  # fail, uncertifiable or note
    summary: str
    count: int


@dataclasses.dataclass(frozen=True)
class RunVerdict:
    """``algoperf verify``'s verdict on one run directory, and why."""

    path: Path
    verdict: str
    explanation: str
    trials: int
    trials_by_status: dict[str, int]
    findings: tuple[Finding, ...]
    trusted_keys: int


def sealed(path: Path) -> bool:
    """Whether any trial under ``path`` carries a seal."""
    from algoperf.verification.seal import SEAL_FILENAME

    return path.is_file() and path.name == SEAL_FILENAME or (
        path.is_dir() and next(path.rglob(SEAL_FILENAME), None) is not None)


def verify_run(path: Path, pubkeys: Sequence[str | os.PathLike] = ()) -> RunVerdict:
    """Verifies ``path`` with ``pubkeys`` trusted (in this process: a report covers few
    trials) and summarises the outcome."""
    from algoperf.verification.certificate import VERDICT_LINES
    from algoperf.verification.context import Options
    from algoperf.verification.findings import FAIL, NOTE, UNCERTIFIABLE
    from algoperf.verification.keys import trusted_keys
    from algoperf.verification.verify import verify

    trusted = trusted_keys(list(pubkeys))
    result = verify(path, Options(trusted=trusted), jobs=1)
    checks = [c for t in result.trials for c in t.checks] + list(result.checks)
    counts = collections.Counter((c.status, c.name, c.summary) for c in checks
                                 if c.status in (FAIL, UNCERTIFIABLE, NOTE))
    order = {FAIL: 0, UNCERTIFIABLE: 1, NOTE: 2}
    findings = tuple(Finding(name, status, summary, n) for (status, name, summary), n in
                     sorted(counts.items(), key=lambda kv: (order[kv[0][0]], -kv[1])))
    by_status = collections.Counter(t.status for t in result.trials)
    return RunVerdict(path, result.verdict, VERDICT_LINES[result.verdict], len(result.trials),
                      dict(by_status), findings, len(trusted.keys))


def verify_signed(run_dirs: Sequence[Path], pubkeys: Sequence[str | os.PathLike] = (),
                  ) -> list[RunVerdict]:
    """The verdict of each run directory that holds sealed trials, in the order given."""
    return [verify_run(Path(p), pubkeys) for p in run_dirs if sealed(Path(p))]
