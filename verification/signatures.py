"""Checks of a trial against what the host signed: its seal and its witness records."""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterable
from typing import Any

from algoperf.logs import events as ev
from algoperf.verification.context import Trial
from algoperf.verification.findings import PASS, UNCERTIFIABLE, Check, Problem, check
from algoperf.verification.seal import SEAL_FILENAME, Seal, open_seal, trial_identity
from algoperf.verification.witness import Observation, WitnessRecord, open_witness, witness_files


def seal(t: Trial, files: dict[str, str]) -> tuple[Check, Seal | None]:
    """The seal's signature, manifest, chain head and place; ``files`` is the trial's
    manifest as found (relative path -> sha256, the seal itself excluded)."""
    path = t.path / SEAL_FILENAME
    name = t.name(SEAL_FILENAME)
    if not path.exists():
        return Check("seal", UNCERTIFIABLE, "unsigned: no seal.dsse.json (the run was not "
                     "made by algoperf docker run)"), None
    if not t.options.trusted:
        return Check("seal", UNCERTIFIABLE, "sealed, but no --pubkey was given to check the "
                     "signature"), None
    try:
        found = open_seal(path.read_bytes(), t.options.trusted)
    except (OSError, ValueError) as e:
        return check("seal", [Problem(name, None, str(e))], ""), None
    problems = []
    for rel, digest in sorted(found.files.items()):
        if rel not in files:
            problems.append(Problem(t.name(rel), None, "signed in the seal but missing"))
        elif files[rel] != digest:
            problems.append(Problem(t.name(rel), None, "changed after it was sealed (sha256 "
                                    "differs from the signed manifest)"))
    problems += [Problem(t.name(rel), None, "added after sealing: not in the signed manifest")
                 for rel in sorted(set(files) - set(found.files))]
    events = found.predicate["events"]
    lines = len(t.log.line_hashes)
    if events["lines"] != lines or events["head"] != t.log.head:
        problems.append(Problem(t.events_name, min(lines, events["lines"]) or None,
                                f"has {lines} lines ending in head {t.log.head[:12]}, the seal "
                                f"signed {events['lines']} lines ending in "
                                f"{str(events['head'])[:12]}"))
    here, sealed = trial_identity(t.path), found.predicate["trial"]
    if sealed != here:
        problems.append(Problem(name, None, f"sealed as {_where(sealed)}, found at "
                                f"{_where(here)}: trial directories were moved or swapped"))
    return check("seal", problems, f"signed by key {found.keyid[:16]}; {len(found.files)} "
                 f"files and the chain head match"), found


def _where(identity: dict[str, Any]) -> str:
    return "/".join(str(identity.get(k)) for k in ("experiment", "study", "workload_dir",
                                                    "trial"))


def witness(t: Trial) -> Check:
    """The witness records: signed, agreeing with the log's bytes and heads, covering the whole
    log, and agreeing with the run's claimed durations within the stated tolerance."""
    paths = witness_files(t.path)
    if not paths:
        return Check("witness", UNCERTIFIABLE, "no witness record: the run's events were not "
                     "watched live from the host")
    if not t.options.trusted:
        return Check("witness", UNCERTIFIABLE, "witnessed, but no --pubkey was given to check "
                     "the signature")
    problems: list[Problem] = []
    records: list[WitnessRecord] = []
    for path in paths:
        name = t.name(path.name)
        try:
            record = open_witness(name, path.read_bytes(), t.options.trusted)
        except (OSError, ValueError) as e:
            problems.append(Problem(name, None, str(e)))
            continue
        records.append(record)
        problems += _record_problems(t, record)
    lines = len(t.log.line_hashes)
    seen = max((r.lines for r in records), default=0)
    if lines > seen and records:
        problems.append(Problem(t.events_name, seen + 1, f"lines {seen + 1}-{lines} were never "
                                "seen by a witness: written after it stopped"))
    problems += _timing_problems(t, records)
    if problems:
        return check("witness", problems, "")
    early = _not_live(records, lines)
    if early:
        return Check("witness", UNCERTIFIABLE, f"lines {_ranges(early)} were written before "
                     "any witness watched the log")
    tol = f"{t.options.witness_abs_tol:g}s + {t.options.witness_rel_tol:.0%}"
    return Check("witness", PASS, f"{len(records)} witness record(s) agree with all {lines} "
                 f"lines; claimed durations within {tol} of the host's clock")


def _record_problems(t: Trial, record: WitnessRecord) -> list[Problem]:
    problems = [Problem(record.name, None, f"the witness saw: {a}") for a in record.anomalies]
    hashes = t.log.line_hashes
    for obs in record.observations:
        if obs.line < 1 or obs.line > len(hashes):
            problems.append(Problem(t.events_name, obs.line, f"gone: the witness saw this "
                                    f"line at {_time(obs.t_wall)}; the log was cut short"))
        elif hashes[obs.line - 1] != obs.sha256:
            problems.append(Problem(t.events_name, obs.line, f"changed after the witness saw "
                                    f"it at {_time(obs.t_wall)}"))
    if not problems and t.log.prefix_sha256(record.lines) != record.events_sha256:
        if record.lines > len(hashes):
            problems.append(Problem(t.events_name, len(hashes) + 1, f"gone: the witness read "
                                    f"{record.lines} lines, the log has {len(hashes)}"))
        else:
            problems.append(Problem(t.events_name, None, f"the first {record.lines} lines are "
                                    "not the bytes the witness read (a line it did not time, "
                                    "such as a hardware sample, was changed)"))
    return problems


def _not_live(records: Iterable[WitnessRecord], lines: int) -> list[int]:
    """The lines no witness saw being written (they were there when it started)."""
    live = sorted((r.preexisting, r.lines) for r in records)
    early, covered = [], 0
    for start, end in live:
        if start > covered:
            early += range(covered + 1, min(start, lines) + 1)
        covered = max(covered, end)
    return early


def _timing_problems(t: Trial, records: Iterable[WitnessRecord]) -> list[Problem]:
    """Within each process (segment), claimed durations against the host's receive times."""
    live: dict[int, Observation] = {}
    for record in records:
        for obs in record.observations:
            live.setdefault(obs.line, obs)
    if not live:
        return []
    starts = [line for line, _ in t.starts]
    by_line = {line: record for line, record in t.log.records if line in live}
    segments: dict[int, list[tuple[int, dict[str, Any], Observation]]] = {}
    for line in sorted(by_line):
        segment = bisect.bisect_right(starts, line) - 1
        segments.setdefault(segment, []).append((line, by_line[line], live[line]))
    problems = []
    for segment, observed in segments.items():
        start_line = starts[segment] if segment >= 0 else None
        problems += _record_clock_problems(t, observed)
        evals = [(line, r, h) for line, r, h in observed if r["type"] == ev.EVAL]
        problems += _eval_clock_problems(t, evals, start_line, live)
    return problems


def _record_clock_problems(t: Trial, observed: list) -> list[Problem]:
    """The record clock (time.monotonic in the run) against the host's."""
    abs_tol, rel_tol = t.options.witness_abs_tol, t.options.witness_rel_tol
    line0, r0, h0 = observed[0]
    for line, r, h in observed[1:]:
        mono, mono0 = _number(r["t_mono"]), _number(r0["t_mono"])
        if mono is None or mono0 is None:
            return [Problem(t.events_name, line, "t_mono is not a number")]
        claimed, passed = mono - mono0, h.t_mono - h0.t_mono
        if abs(claimed - passed) > abs_tol + rel_tol * abs(passed):
            return [Problem(t.events_name, line, f"its time stamp is {claimed:.3f}s after line "
                            f"{line0}'s, the witness saw {passed:.3f}s pass")]
    return []


def _eval_clock_problems(t: Trial, evals: list, start_line: int | None,
                         live: dict[int, Observation]) -> list[Problem]:
    """The runner's clock (total_duration) against the host's, between evals of a process,
    and from the process's start record to its first eval."""
    if not evals:
        return []
    abs_tol, rel_tol = t.options.witness_abs_tol, t.options.witness_rel_tol
    problems = []
    line0, r0, h0 = evals[0]
    total0 = _total(r0)
    start = live.get(start_line) if start_line is not None else None
    if start is not None and total0 is not None:
        passed = h0.t_mono - start.t_mono
        if total0 > passed + abs_tol + rel_tol * abs(passed):
            problems.append(Problem(t.events_name, line0, f"claims {total0:.3f}s since the "
                                    f"training loop started, the witness saw only "
                                    f"{passed:.3f}s since line {start_line}"))
    for line, r, h in evals[1:]:
        total = _total(r)
        if total is None or total0 is None:
            continue
        claimed, passed = total - total0, h.t_mono - h0.t_mono
        if abs(claimed - passed) > abs_tol + rel_tol * abs(passed):
            problems.append(Problem(t.events_name, line, f"claims {claimed:.3f}s of wall time "
                                    f"since the eval on line {line0}, the witness saw "
                                    f"{passed:.3f}s: the run's clock was not the host's"))
            break
    return problems


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _total(record: dict[str, Any]) -> float | None:
    metrics = record["data"].get("metrics")
    return _number(metrics.get("total_duration")) if isinstance(metrics, dict) else None


def _time(t_wall: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(t_wall, datetime.UTC).isoformat(
            timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return repr(t_wall)


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 7] -> "1-3, 7"."""
    parts, start = [], None
    for k, n in enumerate(numbers):
        start = n if start is None else start
        if k + 1 == len(numbers) or numbers[k + 1] != n + 1:
            parts.append(str(n) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)

