"""The verification readers under hypothesis: no input crashes them, and the one-pass event
log reader finds exactly the defects that `verify_chain` finds."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from algoperf.logs.events import GENESIS_PREV, encode_record, line_hash, verify_chain
from algoperf.verification import dsse
from algoperf.verification.context import Options
from algoperf.verification.eventlog import scan
from algoperf.verification.findings import FAIL
from algoperf.verification.keys import TrustedKeys
from algoperf.verification.legacy import read_rows
from algoperf.verification.scores import load_claims
from algoperf.verification.seal import open_seal
from algoperf.verification.tables import compare_eval_csv, expected_eval_table
from algoperf.verification.timing import EvalPoint, check_timing
from algoperf.verification.trial import verify_trial
from algoperf.verification.witness import open_witness

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


def valid_log(count: int) -> bytes:
    """A well-formed log of ``count`` records (fixed time stamps, so draws are stable)."""
    return chained([{"type": "eval" if k else "run_start", "t_wall": 1.5 * k,
                     "t_mono": 0.25 * k, "data": {"global_step": k, "x": k / 3}}
                    for k in range(count)])


@st.composite
def tampered_logs(draw) -> bytes:
    """A valid log with lines removed, repeated, swapped, edited or cut off."""
    lines = valid_log(draw(st.integers(1, 8))).split(b"\n")[:-1]
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "swap", "edit", "garbage"]))
        if op == "drop" and len(lines) > 1:
            lines.pop(k)
        elif op == "dup":
            lines.insert(k, lines[k])
        elif op == "swap" and k + 1 < len(lines):
            lines[k], lines[k + 1] = lines[k + 1], lines[k]
        elif op == "edit" and lines[k]:
            i = draw(st.integers(0, len(lines[k]) - 1))
            lines[k] = lines[k][:i] + draw(st.binary(min_size=1, max_size=3)) + lines[k][i + 1:]
        elif op == "garbage":
            lines[k] = draw(st.binary(max_size=40)).replace(b"\n", b"")
    content = b"\n".join(lines) + b"\n"
    return content[:draw(st.integers(0, len(content)))] if draw(st.booleans()) else content


def same_defects(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(content)
        theirs = {e.line for e in verify_chain(path)}
        ours = {e.line for e in scan(path).errors}
    assert ours == theirs


@FUZZ
@given(tampered_logs())
def test_scan_finds_the_lines_verify_chain_finds(content):
    # Literals the writer never emits and json accepts but verification rejects (eventlog).
    assume(not any(t in content for t in (b"NaN", b"Infinity", b"e999", b"\\ud")))
    same_defects(content)


@FUZZ
@given(st.binary(max_size=300))
def test_scan_never_raises_on_any_bytes(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_bytes(content)
        log = scan(path)
    assert log.size == len(content)


record_types = st.sampled_from(["run_start", "eval", "resume", "run_end", "checkpoint",
                                "error", "hardware_sample", "other"])


@st.composite
def event_records(draw) -> list[dict]:
    """Chain-valid records with arbitrary (but JSON) data, run-like or not."""
    records = []
    for _ in range(draw(st.integers(0, 6))):
        data = draw(st.dictionaries(st.sampled_from(
            ["metrics", "global_step", "preemption_count", "study", "trial", "workload",
             "framework", "seed", "fingerprint", "budget_sec", "eval_period_sec", "num_evals",
             "ruleset", "rules_version", "accumulated_submission_time", "reason"]),
            json_values | st.dictionaries(st.sampled_from(
                ["score", "total_duration", "accumulated_submission_time",
                 "accumulated_eval_time", "accumulated_logging_time", "validation/accuracy"]),
                json_values, max_size=6), max_size=8))
        records.append({"type": draw(record_types), "data": data,
                        "t_wall": draw(json_values), "t_mono": draw(json_values)})
    return records


def chained(records: list[dict]) -> bytes:
    """The records as a hash-chained log, encoded as the runner's EventLog encodes them."""
    prev, lines = GENESIS_PREV, []
    for seq, r in enumerate(records):
        line = encode_record({"seq": seq, "type": r["type"], "t_wall": r["t_wall"],
                              "t_mono": r["t_mono"], "data": r["data"], "prev": prev})
        prev = line_hash(line)
        lines.append(line)
    return b"".join(line + b"\n" for line in lines)


@FUZZ
@given(event_records(), st.binary(max_size=200))
def test_a_trial_with_any_events_and_csv_is_verified_without_crashing(records, csv_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "sub" / "study_0" / "digits_jax" / "trial_1"
        trial.mkdir(parents=True)
        (trial / "events.jsonl").write_bytes(chained(records))
        (trial / "eval_measurements.csv").write_bytes(csv_bytes)
        (trial / "witness_0.dsse.json").write_bytes(csv_bytes)
        verdict = verify_trial(Path(tmp), trial, Options(trusted=TrustedKeys({"k": b"0" * 32})))
    crashed = [c for c in verdict.checks if "cannot read" in c.summary]
    assert not crashed, crashed
    assert verdict.status in ("pass", "skip", "uncertifiable", FAIL)


@FUZZ
@given(event_records(), st.binary(max_size=300))
def test_csv_comparison_never_raises(records, actual):
    table = expected_eval_table(list(enumerate(
        [dict(r, seq=0, prev="") for r in records], start=1)))
    for problem in compare_eval_csv(table, actual, "e.csv", "events.jsonl"):
        assert problem.file == "e.csv"


@FUZZ
@given(st.binary(max_size=300))
def test_legacy_csv_reader_never_raises(content):
    rows, problems = read_rows(content, "e.csv")
    assert all(isinstance(line, int) for line, _ in rows)


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 st.fixed_dictionaries({"payloadType": st.just(dsse.IN_TOTO_PAYLOAD_TYPE),
                                        "payload": st.text(max_size=20),
                                        "signatures": json_values})
                 .map(lambda v: json.dumps(v).encode())))
def test_signed_file_readers_raise_only_value_errors(content):
    trusted = TrustedKeys({"k": b"\x01" * 32})
    for read in (lambda: open_seal(content, trusted),
                 lambda: open_witness("w", content, trusted),
                 lambda: dsse.read_payload_unverified(content)):
        try:
            read()
        except ValueError:
            pass


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(), st.floats(), st.floats(),
                          st.floats(), st.floats()), max_size=6),
       st.none() | st.floats(), st.none() | st.floats(), st.booleans())
def test_timing_checks_never_raise(rows, period, budget, forced):
    points = [EvalPoint("f", k + 2, seg, step, sub, (sub, ev, log), total)
              for k, (seg, step, sub, ev, log, total) in enumerate(rows)]
    for problem in check_timing(points, period, budget, forced):
        assert problem.line >= 2


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(["claims.json", "claims.csv"]))
def test_claims_reader_raises_only_user_errors(content, name):
    from algoperf.errors import UserError

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        try:
            load_claims(path)
        except UserError:
            pass
