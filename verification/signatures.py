"""Checks of a trial against what the host signed: its seal, its witness records and the
hardware samples the host took."""

from __future__ import annotations

import bisect
import datetime
import itertools
from collections.abc import Iterable
from typing import Any

from algoperf.hardware.sampling import INTERVAL_SEC, SAMPLE_EVENT, throttle_summary
from algoperf.logs import events as ev
from algoperf.verification.context import Trial
from algoperf.verification.findings import NOTE, PASS, UNCERTIFIABLE, Check, Problem, check
from algoperf.verification.seal import SEAL_FILENAME, Seal, open_seal, trial_identity
from algoperf.verification.witness import Observation, WitnessRecord, witness_files


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
    records, unopened = t.witnesses
    problems = [Problem(name, None, reason) for name, reason in unopened]
    for record in records:
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


def hardware_samples(t: Trial) -> Check:
    """Who took the trial's hardware samples. Certifiable only when the host did: its witness
    records hold samples that bracket every line they saw live, with no gap of more than
    twice the interval (plus the witness tolerance). A ``hardware_sample`` in the log that a
    sampling host saw being written came from inside the sandbox, where the runner writes
    none, and fails. Throttling in the host's samples is a finding (note), never a failure."""
    name = "hardware samples"
    in_log = t.log.sample_lines
    ours = f"{len(in_log)} in {ev.EVENTS_FILENAME}, written by the run itself"
    if not witness_files(t.path):
        return Check(name, UNCERTIFIABLE, f"not taken by the host ({ours}): no witness")
    if not t.options.trusted:
        return Check(name, UNCERTIFIABLE, "witnessed, but no --pubkey was given to check the "
                     "signature of the host's samples")
    records, unopened = t.witnesses
    problems = [Problem(n, None, "its signature or content did not verify (see the witness "
                        "check): its hardware samples are not trusted") for n, _ in unopened]
    sampled = [r for r in records if r.samples is not None]
    for record in sampled:
        problems += [Problem(t.events_name, line, "a hardware_sample written inside the "
                             "sandbox while the host sampled (the runner there writes none)")
                     for line in in_log if record.preexisting < line <= record.lines]
        times = [s.t_mono for s in record.samples]
        if times != sorted(times):
            problems.append(Problem(record.name, None, "the host's samples are not in time "
                                    "order"))
    if problems:
        return check(name, problems, "")
    if not sampled:
        return Check(name, UNCERTIFIABLE, f"the witness took no hardware samples ({ours})")
    gaps = [gap for record in sampled for gap in _coverage_gaps(t, record)]
    if gaps:
        return Check(name, UNCERTIFIABLE, gaps[0])
    samples = [s for record in sampled for s in record.samples]
    if not samples:
        return Check(name, UNCERTIFIABLE, "the witness saw no line live, so it kept no "
                     "hardware samples")
    pids = sorted({str(r.sample_source.get("pid")) for r in sampled if r.sample_source})
    summary = throttle_summary({"type": SAMPLE_EVENT, "data": s.data} for s in samples)
    text = (f"{len(samples)} samples by the host (pid {', '.join(pids)}) span the witnessed "
            f"lines; {summary.text()}")
    if summary.throttled:
        return Check(name, NOTE, text, (Problem(sampled[-1].name, None, summary.text()),))
    return Check(name, PASS, text)


def _coverage_gaps(t: Trial, record: WitnessRecord) -> list[str]:
    """Where the record's samples fail to bracket the lines it saw live, or leave a gap."""
    if not record.observations:
        return []
    first, last = record.observations[0], record.observations[-1]
    if not record.samples:
        return [f"{record.name}: the host took no samples while it watched lines "
                f"{first.line}-{last.line}"]
    tol = t.options.witness_abs_tol
    source = record.sample_source or {}
    interval = _number(source.get("interval_sec")) or INTERVAL_SEC
    times = [s.t_mono for s in record.samples]
    found = []
    if times[0] > first.t_mono + tol:
        found.append(f"{record.name}: the host's samples begin {times[0] - first.t_mono:.1f}s "
                     f"after line {first.line}")
    if times[-1] < last.t_mono - tol:
        found.append(f"{record.name}: the host's samples end {last.t_mono - times[-1]:.1f}s "
                     f"before line {last.line}")
    widest = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    if widest > 2 * interval + tol:
        found.append(f"{record.name}: a gap of {widest:.1f}s between the host's samples "
                     f"(taken every {interval:g}s)")
    return found


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

