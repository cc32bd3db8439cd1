"""The outputs of a verification: an in-toto certificate and a report a person reads.

The certificate is an in-toto Statement v1 (predicate type ``urn:algoperf:verification:v1``)
whose subjects are every file verified, with its sha256, and whose predicate holds the
verdict, the options, every check of every trial, the checks across trials and the
recomputed numbers. With a signing key it is also written as a DSSE envelope. The report says
the same in prose: the verdict first, then what failed or could not be certified, and where.
"""

from __future__ import annotations

import collections
import json
import math
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from algoperf.logs.atomic import write_atomic
from algoperf.verification import dsse, statement
from algoperf.verification.findings import FAIL, NOTE, PASS, SKIP, UNCERTIFIABLE, Check
from algoperf.verification.keys import SigningKey
from algoperf.verification.seal import utc_now
from algoperf.verification.verify import Verification

CERTIFICATE_FILENAME = "certificate.intoto.json"
SIGNED_CERTIFICATE_FILENAME = "certificate.dsse.json"
REPORT_FILENAME = "report.md"
MAX_LISTED = 40


def _version() -> str:
    try:
        return version("algoperf")
    except PackageNotFoundError:
        return "unknown"


def certificate(v: Verification, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Statement: verified files as subjects, everything found as the predicate."""
    counts = collections.Counter(t.status for t in v.trials)
    predicate = {
        "verdict": v.verdict,
        "exit_code": v.exit_code,
        "verified_at": utc_now(),
        "verifier": {"name": "algoperf verify", "version": _version()},
        "root": str(v.tree.root),
        "level": v.tree.level,
        "options": {
            "trusted_keys": sorted(v.options.trusted.keys),
            "reference": v.options.reference,
            "submission_sha256": v.options.submission_sha256,
            "lockfile_sha256s": (sorted(v.options.lockfile_sha256s)
                                 if v.options.lockfile_sha256s is not None else None),
            "witness_tolerance": {"abs_sec": v.options.witness_abs_tol,
                                  "rel": v.options.witness_rel_tol},
            **(extra or {}),
        },
        "summary": {"trials": len(v.trials), "by_status": dict(counts),
                    "bytes": v.bytes_read, "seconds": round(v.seconds, 3)},
        "checks": [c.to_json() for c in v.checks],
        "trials": [t.to_json() for t in v.trials],
        "recomputed": v.recomputed.to_json() if v.recomputed else None,
    }
    return statement.statement(v.subjects(), statement.CERTIFICATE, predicate)


def write_outputs(v: Verification, out_dir: str | os.PathLike,
                  key: SigningKey | None = None,
                  extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Writes the certificate (signed too, given a key) and the report into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cert = certificate(v, extra)
    written = {"certificate": write_atomic(out / CERTIFICATE_FILENAME,
                                           json.dumps(cert, indent=2) + "\n")}
    if key is not None:
        envelope = dsse.sign_envelope(statement.statement_bytes(cert), key)
        written["signed"] = write_atomic(out / SIGNED_CERTIFICATE_FILENAME,
                                         dsse.envelope_bytes(envelope))
    written["report"] = write_atomic(out / REPORT_FILENAME, report(v))
    return written


VERDICT_LINES = {
    "verified": "VERIFIED: every check passed",
    "failed": "FAILED: the logs contradict themselves, their signatures or the rules",
    "not certifiable": "NOT CERTIFIABLE: nothing contradicts, but the runs cannot be certified",
    "legacy, unsigned": "LEGACY, UNSIGNED: AlgoPerf's own logs are consistent but cannot be "
                        "certified",
}


def report(v: Verification) -> str:
    """The verification as Markdown text."""
    lines = [f"# algoperf verify: {v.tree.root}", "",
             f"**Verdict: {VERDICT_LINES[v.verdict]}** (exit code {v.exit_code})", "",
             f"{len(v.trials)} trials ({v.tree.level} level), {v.bytes_read / 1e6:.1f} MB "
             f"read in {v.seconds:.2f} s.", ""]
    lines += _check_table(v)
    failures = _listed(v, FAIL)
    if failures:
        lines += ["", "## Problems", ""] + failures
    reasons = _reasons(v, UNCERTIFIABLE)
    if reasons:
        lines += ["", "## Why not certifiable", ""] + reasons
    notes = _listed(v, NOTE)
    if notes:
        lines += ["", "## Findings (they change no verdict)", ""] + notes
    lines += _scores(v)
    return "\n".join(lines) + "\n"


def _check_table(v: Verification) -> list[str]:
    by_name: dict[str, collections.Counter] = {}
    for trial in v.trials:
        for c in trial.checks:
            by_name.setdefault(c.name, collections.Counter())[c.status] += 1
    rows = ["| check | pass | fail | not certifiable | skipped | noted |",
            "|---|---|---|---|---|---|"]
    for name, counts in by_name.items():
        rows.append(f"| {name} | {counts[PASS]} | {counts[FAIL]} | {counts[UNCERTIFIABLE]} | "
                    f"{counts[SKIP]} | {counts[NOTE]} |")
    for c in v.checks:
        rows.append(f"| {c.name} (all trials) | {int(c.status == PASS)} | "
                    f"{int(c.status == FAIL)} | {int(c.status == UNCERTIFIABLE)} | "
                    f"{int(c.status == SKIP)} | {int(c.status == NOTE)} |")
    return rows


def _all_checks(v: Verification) -> list[Check]:
    return [c for t in v.trials for c in t.checks] + list(v.checks)


def _listed(v: Verification, status: str) -> list[str]:
    lines = []
    for c in _all_checks(v):
        if c.status != status:
            continue
        found = c.problems or ()
        lines += [f"- {c.name}: {p}" for p in found]
        if c.more_problems:
            lines.append(f"- {c.name}: ... and {c.more_problems} more")
        if not found:
            lines.append(f"- {c.name}: {c.summary}")
    if len(lines) > MAX_LISTED:
        lines = lines[:MAX_LISTED] + [f"- ... and {len(lines) - MAX_LISTED} more (all are in "
                                      "the certificate)"]
    return lines


def _reasons(v: Verification, status: str) -> list[str]:
    """Each distinct reason with how many trials it applies to."""
    counts = collections.Counter((c.name, c.summary) for c in _all_checks(v)
                                 if c.status == status)
    return [f"- {name}: {summary}" + (f" ({n} trials)" if n > 1 else "")
            for (name, summary), n in counts.most_common()]


def _scores(v: Verification) -> list[str]:
    if v.recomputed is None:
        return []
    lines = []
    for board in v.recomputed.leaderboards:
        where = v.tree.root.name if board.path == "." else board.path
        lines += ["", f"## Recomputed scores: {where} (rules {board.rules}, "
                  f"{board.ruleset} tuning)", "",
                  "| submission | score | workloads reached |", "|---|---|---|"]
        for s in board.submissions:
            reached = sum(math.isfinite(t) for t in s.times.values())
            lines.append(f"| {s.name} | {s.score:.4f} | {reached} of {len(s.times)} |")
    if not v.recomputed.leaderboards and v.recomputed.trial_times:
        lines += ["", "## Recomputed time to target", "", "| trial | seconds |", "|---|---|"]
        for trial, seconds in v.recomputed.trial_times.items():
            shown = f"{seconds:.3f}" if math.isfinite(seconds) else "not reached"
            lines.append(f"| {trial} | {shown} |")
    return lines
