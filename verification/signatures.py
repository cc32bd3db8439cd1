"""Checks of a trial against what the host signed: its seal and its witness records."""

from __future__ import annotations

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
    """The witness records: signed, agreeing with every line, covering the whole log, and
    agreeing with the run's claimed durations within the stated tolerance."""
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
    live, seen = _coverage(records)
    problems += _unseen_problems(t, seen)
    problems += _timing_problems(t, live)
    if problems:
        return check("witness", problems, "")
    early = sorted(seen - set(live))
    tol = f"{t.options.witness_abs_tol:g}s + {t.options.witness_rel_tol:.0%}"
    if early:
        return Check("witness", UNCERTIFIABLE, f"lines {_ranges(early)} were written before "
                     "any witness watched the log")
    return Check("witness", PASS, f"{len(records)} witness record(s) agree with all "
                 f"{len(t.log.line_hashes)} lines; claimed durations within {tol} of the "
                 "host's clock")


def _record_problems(t: Trial, record: WitnessRecord) -> list[Problem]:
    problems = [Problem(record.name, None, f"the witness saw: {a}") for a in record.anomalies]
    hashes = t.log.line_hashes
    if t.log.prefix_sha256(record.lines) != record.events_sha256:
        problems.append(Problem(t.events_name, None, f"the first {record.lines} lines are not "
                                "the bytes the witness saw"))
    for obs in record.observations:
        if obs.line < 1 or obs.line > len(hashes):
            problems.append(Problem(t.events_name, obs.line, f"gone: the witness saw this "
                                    f"line at {_time(obs.t_wall)}; the log was cut short"))
        elif hashes[obs.line - 1] != obs.sha256:
            problems.append(Problem(t.events_name, obs.line, f"changed after the witness saw "
                                    f"it at {_time(obs.t_wall)}"))
    return problems


def _coverage(records: Iterable[WitnessRecord]) -> tuple[dict[int, Observation], set[int]]:
    """(line -> the first live sighting of it, every line seen at all)."""
    live: dict[int, Observation] = {}
    seen: set[int] = set()
    for record in records:
        for obs in record.observations:
            seen.add(obs.line)
            if obs.live:
                live.setdefault(obs.line, obs)
    return live, seen


def _unseen_problems(t: Trial, seen: set[int]) -> list[Problem]:
    unseen = [n for n in range(1, len(t.log.line_hashes) + 1) if n not in seen]
    if not unseen:
        return []
    return [Problem(t.events_name, unseen[0], f"lines {_ranges(unseen)} were never seen by a "
                    "witness: written after it stopped")]


def _timing_problems(t: Trial, live: dict[int, Observation]) -> list[Problem]:
    """Within each process (segment), claimed durations against the host's receive times."""
    abs_tol, rel_tol = t.options.witness_abs_tol, t.options.witness_rel_tol
    problems = []
    for start_line, segment in _segments(t):
        observed = [(line, r, live[line]) for line, r in segment if line in live]
        if not observed:
            continue
        line0, r0, h0 = observed[0]
        for line, r, h in observed[1:]:  # the record clock (time.monotonic) vs the host's
            if _number(r["t_mono"]) is None or _number(r0["t_mono"]) is None:
                problems.append(Problem(t.events_name, line, "t_mono is not a number"))
                break
            claimed, passed = r["t_mono"] - r0["t_mono"], h.t_mono - h0.t_mono
            if abs(claimed - passed) > abs_tol + rel_tol * passed:
                problems.append(Problem(t.events_name, line, f"its time stamp is {claimed:.3f}s "
                                        f"after line {line0}'s, the witness saw {passed:.3f}s "
                                        "pass"))
                break
        evals = [(line, r, h) for line, r, h in observed if r["type"] == ev.EVAL]
        problems += _eval_clock_problems(t, evals, start_line, live, abs_tol, rel_tol)
    return problems


def _eval_clock_problems(t: Trial, evals: list, start_line: int,
                         live: dict[int, Observation], abs_tol: float,
                         rel_tol: float) -> list[Problem]:
    """The runner's clock (total_duration) against the host's, between evals of a process,
    and from the process's start record to its first eval."""
    if not evals:
        return []
    problems = []
    line0, r0, h0 = evals[0]
    total0 = _total(r0)
    start = live.get(start_line)
    if start is not None and total0 is not None:
        passed = h0.t_mono - start.t_mono
        if total0 > passed + abs_tol + rel_tol * passed:
            problems.append(Problem(t.events_name, line0, f"claims {total0:.3f}s since the "
                                    f"training loop started, the witness saw only "
                                    f"{passed:.3f}s since line {start_line}"))
    for line, r, h in evals[1:]:
        total = _total(r)
        if total is None or total0 is None:
            continue
        claimed, passed = total - total0, h.t_mono - h0.t_mono
        if abs(claimed - passed) > abs_tol + rel_tol * passed:
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


def _segments(t: Trial) -> list[tuple[int, list[tuple[int, dict[str, Any]]]]]:
    """(start line, records) per process: each run_start or resume opens a segment."""
    segments: list[tuple[int, list[tuple[int, dict[str, Any]]]]] = []
    for line, record in t.log.records:
        if record["type"] in (ev.RUN_START, ev.RESUME) or not segments:
            segments.append((line, []))
        segments[-1][1].append((line, record))
    return segments


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

