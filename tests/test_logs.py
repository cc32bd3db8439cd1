"""The event log's hash chain, AlgoPerf's measurement CSVs and per-trial JSON files."""

from __future__ import annotations

import collections
import csv
import enum
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import ALGOPERF_LOGS

from algoperf.errors import UserError
from algoperf.logs import events, trial_files
from algoperf.logs.events import EventLog, read_events, verify_chain
from algoperf.logs.measurements import MetricLogger, read_measurements
from algoperf.logs.values import parse_float

ALGOPERF_LOGS = ALGOPERF_LOGS / "v0.6"


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write_log(path: Path, n: int) -> None:
    with EventLog(path) as log:
        for i in range(n):
            log.append(events.EVAL, {"global_step": i, "validation/loss": 1.0 / (i + 1)})


# --- event log ---------------------------------------------------------------------------


def test_prev_is_sha256_of_previous_line_bytes_and_first_prev_of_empty_string(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        written = [
            log.append(events.RUN_START, {"workload": "mnist", "seed": 7}),
            log.append(events.EVAL, {"score": 1.5}),
            log.append(events.RUN_END, {}),
        ]
        head = log.head
    lines = _lines(path)
    assert json.loads(lines[0])["prev"] == hashlib.sha256(b"").hexdigest()
    for before, line in zip(lines, lines[1:], strict=False):
        assert json.loads(line)["prev"] == hashlib.sha256(before).hexdigest()
    assert head == hashlib.sha256(lines[-1]).hexdigest()
    assert [json.loads(line) for line in lines] == written == read_events(path)


def test_records_have_design_keys_in_order_and_compact_json(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        record = log.append(events.CHECKPOINT, {"global_step": 3, "files": ["a", "b"]})
    (line,) = _lines(path)
    assert list(json.loads(line)) == ["seq", "type", "t_wall", "t_mono", "data", "prev"]
    assert line == json.dumps(record, separators=(",", ":")).encode()
    assert record["seq"] == 0 and record["type"] == "checkpoint"
    assert record["t_wall"] > 1e9 and record["t_mono"] > 0


def test_empty_log_head_is_the_first_prev_and_a_directory_gets_events_jsonl(tmp_path):
    with EventLog(tmp_path / "trial_1") as log:
        assert log.path == tmp_path / "trial_1" / "events.jsonl" and log.path.exists()
        assert log.head == hashlib.sha256(b"").hexdigest()
        assert log.next_seq == 0


def test_reopen_continues_seq_and_chain(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 2)
    with EventLog(path) as log:
        assert log.next_seq == 2
        assert log.head == hashlib.sha256(_lines(path)[-1]).hexdigest()
        log.append(events.RESUME, {"preemption_count": 1})
    assert [r["seq"] for r in read_events(path)] == [0, 1, 2]
    assert verify_chain(path) == []


def test_partial_last_line_is_cut_and_recorded_by_log_repair(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 2)
    complete = path.read_bytes()
    fragment = b'{"seq":2,"type":"eval","t_wa'
    path.write_bytes(complete + fragment)
    with EventLog(path) as log:
        log.append(events.RESUME, {})
    assert path.read_bytes().startswith(complete)
    records = read_events(path)
    assert [r["type"] for r in records] == ["eval", "eval", "log_repair", "resume"]
    repair = records[2]["data"]
    assert repair["dropped_bytes"] == len(fragment)
    assert repair["dropped_sha256"] == hashlib.sha256(fragment).hexdigest()
    assert repair["offset"] == len(complete)
    assert verify_chain(path) == []


def test_fragment_without_any_complete_line_is_repaired(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq":0,"ty')
    with EventLog(path) as log:
        assert log.next_seq == 1
    (record,) = read_events(path)
    assert record["type"] == events.LOG_REPAIR and record["prev"] == events.GENESIS_PREV


def test_reopen_refuses_a_log_whose_last_line_is_not_a_record(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 1)
    path.write_bytes(path.read_bytes() + b"garbage\n")
    before = path.read_bytes()
    with pytest.raises(UserError, match="line 2"):
        EventLog(path)
    assert path.read_bytes() == before
    path.write_bytes(before[: -len(b"garbage\n")])
    EventLog(path).close()  # the refused open released its lock


def test_second_writer_is_refused_while_the_first_is_open(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path):
        with pytest.raises(UserError, match="another run"):
            EventLog(path)
    EventLog(path).close()  # the lock is released on close


def test_nonfinite_floats_are_written_as_strings_and_parse_back(tmp_path):
    path = tmp_path / "events.jsonl"
    data = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf,
            "nested": {"values": [1.5, np.float32(np.nan)]}, "np": np.float64(0.25)}
    with EventLog(path) as log:
        log.append(events.EVAL, data)
    (line,) = _lines(path)

    def reject(token):
        raise AssertionError(f"bare {token} in the log")

    written = json.loads(line, parse_constant=reject)["data"]
    assert written == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity",
                       "nested": {"values": [1.5, "NaN"]}, "np": 0.25}
    assert math.isnan(parse_float(written["nan"]))
    assert parse_float(written["inf"]) == math.inf and parse_float(written["ninf"]) == -math.inf
    assert parse_float(0.25) == 0.25


def test_unserialisable_data_raises_and_writes_nothing(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        log.append(events.RUN_START, {})
        with pytest.raises(TypeError, match="object"):
            log.append(events.EVAL, {"bad": object()})
        log.append(events.RUN_END, {})
    assert [r["seq"] for r in read_events(path)] == [0, 1]
    assert verify_chain(path) == []


def test_failed_write_leaves_no_partial_line(tmp_path):
    # A file-size limit makes the kernel accept part of the line, then refuse the rest.
    path = tmp_path / "events.jsonl"
    _write_log(path, 1)
    script = f"""
import resource, signal, os
from algoperf.logs.events import EventLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
log = EventLog({str(path)!r})
size = os.path.getsize({str(path)!r})
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 400, resource.RLIM_INFINITY))
try:
    log.append("eval", {{"blob": "x" * 1000}})
except OSError:
    print("refused")
log.append("run_end", {{}})
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "refused"
    assert [r["type"] for r in read_events(path)] == ["eval", "run_end"]
    assert verify_chain(path) == []


def test_verify_chain_accepts_an_intact_log(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 5)
    assert verify_chain(path) == []
    with EventLog(path) as log:
        head = log.head
    assert verify_chain(path, head=head) == []


def test_verify_chain_reports_an_edited_line_at_the_next_line(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 4)
    lines = _lines(path)
    lines[1] = lines[1].replace(b'"global_step":1', b'"global_step":9')
    path.write_bytes(b"\n".join(lines) + b"\n")
    errors = verify_chain(path)
    assert [e.line for e in errors] == [3]
    assert "prev" in errors[0].reason and "line 2" in errors[0].reason


def test_verify_chain_reports_reordered_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 4)
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    errors = verify_chain(path)
    assert {e.line for e in errors} == {2, 3, 4}
    assert any(e.line == 2 and "seq gap" in e.reason for e in errors)
    assert any(e.line == 3 and "seq goes back" in e.reason for e in errors)


def test_verify_chain_reports_a_duplicated_line(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 3)
    lines = _lines(path)
    lines.insert(2, lines[1])
    path.write_bytes(b"\n".join(lines) + b"\n")
    errors = verify_chain(path)
    assert any(e.line == 3 and "duplicate seq 1" in e.reason for e in errors)
    assert any(e.line == 3 and "prev" in e.reason for e in errors)


def test_verify_chain_reports_a_truncated_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 3)
    path.write_bytes(path.read_bytes()[:-20])
    errors = verify_chain(path)
    assert [(e.line, "truncated" in e.reason) for e in errors] == [(3, True)]
    assert len(read_events(path)) == 2  # the fragment is not a record


def test_verify_chain_reports_bad_json_with_its_line_number(tmp_path):
    path = tmp_path / "events.jsonl"
    _write_log(path, 3)
    lines = _lines(path)
    lines[1] = lines[1][:-1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    errors = verify_chain(path)
    assert errors[0].line == 2 and "bad JSON" in errors[0].reason
    assert str(errors[0]).startswith("line 2: ")
    with pytest.raises(UserError, match="line 2"):
        read_events(path)


def test_verify_chain_with_head_detects_a_removed_last_line(tmp_path):
    path = tmp_path / "events.jsonl"
    with EventLog(path) as log:
        for i in range(3):
            log.append(events.EVAL, {"i": i})
        head = log.head
    path.write_bytes(b"\n".join(_lines(path)[:-1]) + b"\n")
    assert verify_chain(path) == []  # the chain alone cannot see it
    assert [e.line for e in verify_chain(path, head=head)] == [2]


def test_missing_log_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no event log"):
        verify_chain(tmp_path / "events.jsonl")


# --- measurements CSVs ---------------------------------------------------------------------


def _eval_result(step: int) -> dict:
    """An eval result in the runner's key order (reference §2.7)."""
    return {"train/accuracy": 0.5, "train/loss": 0.7, "validation/accuracy": 0.4,
            "validation/loss": 0.8, "validation/num_examples": 100, "test/accuracy": 0.3,
            "test/loss": 0.9, "test/num_examples": 100, "score": 10.0 * step,
            "total_duration": 12.0 * step, "accumulated_submission_time": 10.0 * step,
            "accumulated_eval_time": 1.0 * step, "accumulated_logging_time": 0.0}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_first_row_columns_are_sorted_alphabetically(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.append_scalar_metrics({"loss": 1.0, "grad_norm": 2.0}, global_step=0)
    assert _rows(tmp_path / "measurements.csv")[0] == ["global_step", "grad_norm", "loss"]


def test_new_column_mid_run_is_appended_at_the_end_and_old_rows_get_empty_cells(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.append_scalar_metrics({"loss": 1.0, "grad_norm": 2.0}, global_step=0)
    logger.append_scalar_metrics({"zeta": 1, "alpha": 2, "loss": 0.5}, 1, preemption_count=0)
    logger.append_scalar_metrics({"loss": 0.25}, global_step=2)
    assert _rows(tmp_path / "measurements.csv") == [
        ["global_step", "grad_norm", "loss", "zeta", "alpha", "preemption_count"],
        ["0", "2.0", "1.0", "", "", ""],
        ["1", "", "0.5", "1", "2", "0"],
        ["2", "", "0.25", "", "", ""],
    ]


def test_eval_rows_go_to_both_files_and_other_rows_only_to_measurements(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.append_scalar_metrics({"loss": 1.0}, global_step=0)
    logger.append_scalar_metrics(_eval_result(1), 1, preemption_count=0, is_eval=True)
    logger.append_scalar_metrics({"score": 20.0}, 2, preemption_count=0)
    logger.finish()
    assert [r["global_step"] for r in read_measurements(tmp_path / "measurements.csv")] == [
        "0", "1", "2"]
    (eval_row,) = read_measurements(tmp_path / "eval_measurements.csv")
    assert eval_row["global_step"] == "1" and eval_row["preemption_count"] == "0"


def test_append_scalar_metrics_leaves_the_callers_dict_unchanged(tmp_path):
    metrics = {"loss": 1.0}
    MetricLogger(tmp_path).append_scalar_metrics(metrics, 5, preemption_count=1, is_eval=True)
    assert metrics == {"loss": 1.0}


def test_values_are_spelled_as_pandas_writes_them(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.append_scalar_metrics(
        {"f": 0.1, "small": 1e-05, "f32": np.float32(0.1), "i": np.int64(7), "b": True,
         "nan": math.nan, "inf": -math.inf, "none": None, "arr": np.array(2.5)},
        global_step=3,
    )
    (row,) = read_measurements(tmp_path / "measurements.csv")
    assert row == {"arr": "2.5", "b": "True", "f": "0.1", "f32": "0.10000000149011612",
                   "global_step": "3", "i": "7", "inf": "-inf", "nan": "nan", "none": "",
                   "small": "1e-05"}
    assert math.isnan(float(row["nan"]))


def test_append_with_known_columns_does_not_rewrite_the_file(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.append_scalar_metrics({"loss": 1.0}, global_step=0)
    inode = os.stat(tmp_path / "measurements.csv").st_ino
    logger.append_scalar_metrics({"loss": 0.5}, global_step=1)
    assert os.stat(tmp_path / "measurements.csv").st_ino == inode
    logger.append_scalar_metrics({"loss": 0.5, "new": 1}, global_step=2)
    assert os.stat(tmp_path / "measurements.csv").st_ino != inode  # replaced atomically
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_reopen_keeps_rows_and_header(tmp_path):
    first = MetricLogger(tmp_path)
    first.append_scalar_metrics(_eval_result(1), 1, preemption_count=0, is_eval=True)
    first.append_scalar_metrics({"loss": 0.5}, global_step=2)
    header = _rows(tmp_path / "eval_measurements.csv")[0]
    second = MetricLogger(tmp_path)
    second.append_scalar_metrics(_eval_result(3), 3, preemption_count=1, is_eval=True)
    rows = _rows(tmp_path / "eval_measurements.csv")
    assert rows[0] == header
    assert [r[header.index("global_step")] for r in rows[1:]] == ["1", "3"]
    assert len(_rows(tmp_path / "measurements.csv")) == 4


def test_truncate_evals_after_drops_later_rows_in_both_files(tmp_path):
    logger = MetricLogger(tmp_path)
    for step in (1, 5, 9):
        logger.append_scalar_metrics({"loss": 1.0 / step}, global_step=step)
        logger.append_scalar_metrics(_eval_result(step), step, preemption_count=0, is_eval=True)
    assert MetricLogger(tmp_path).truncate_evals_after(5) == 3
    steps = [r["global_step"] for r in read_measurements(tmp_path / "measurements.csv")]
    assert steps == ["1", "1", "5", "5"]
    evals = read_measurements(tmp_path / "eval_measurements.csv")
    assert [r["global_step"] for r in evals] == ["1", "5"]


def test_partial_last_row_is_dropped_on_reopen(tmp_path):
    logger = MetricLogger(tmp_path)
    logger.append_scalar_metrics({"loss": 1.0}, global_step=0)
    path = tmp_path / "measurements.csv"
    complete = path.read_bytes()
    path.write_bytes(complete + b"1,0.")
    MetricLogger(tmp_path).append_scalar_metrics({"loss": 0.5}, global_step=1)
    assert _rows(path) == [["global_step", "loss"], ["0", "1.0"], ["1", "0.5"]]


def _cell_value(cell: str):
    if cell == "":
        return None
    return int(cell) if re.fullmatch(r"-?\d+", cell) else float(cell)


@pytest.mark.parametrize("trial", [
    "external_tuning/baseline/study_0/ogbg_jax/trial_1",
    "external_tuning/shampoo/study_0/librispeech_deepspeech_pytorch/trial_1",
    "self_tuning/schedule_free_adamw_v2/study_0/wmt_pytorch/trial_1",
])
def test_eval_csv_reproduces_a_real_algoperf_file_byte_for_byte(tmp_path, trial):
    real = ALGOPERF_LOGS / trial / "eval_measurements.csv"
    header, *rows = _rows(real)
    logger = MetricLogger(tmp_path)
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        step, preemptions = int(cells.pop("global_step")), int(cells.pop("preemption_count"))
        metrics = {k: _cell_value(v) for k, v in cells.items()}
        logger.append_scalar_metrics(metrics, step, preemptions, is_eval=True)
    assert (tmp_path / "eval_measurements.csv").read_bytes() == real.read_bytes()


def test_eval_csv_header_matches_every_real_algoperf_header(tmp_path):
    files = ALGOPERF_LOGS.glob("*/*/*/*/*/eval_measurements.csv")
    real_headers = {tuple(_rows(p)[0]) for p in files}
    assert len(real_headers) >= 5
    for i, header in enumerate(sorted(real_headers)):
        metrics = {k: 1.0 for k in reversed(header) if k not in ("global_step", "preemption_count")}
        MetricLogger(tmp_path / str(i)).append_scalar_metrics(metrics, 1, 0, is_eval=True)
        assert tuple(_rows(tmp_path / str(i) / "eval_measurements.csv")[0]) == header


# --- per-trial JSON files -----------------------------------------------------------------


def test_hparams_round_trip_in_field_order(tmp_path):
    Hyperparameters = collections.namedtuple("Hyperparameters", ["learning_rate", "beta2", "b"])
    hp = Hyperparameters(learning_rate=0.001308209823469072, beta2=0.998, b=True)
    path = trial_files.write_hparams(tmp_path, hp)
    assert path == tmp_path / "hparams.json"
    assert path.read_text() == json.dumps(hp._asdict(), indent=2)
    assert list(trial_files.read_hparams(tmp_path).items()) == list(hp._asdict().items())


def test_read_hparams_is_none_without_file_and_a_user_error_for_bad_json(tmp_path):
    assert trial_files.read_hparams(tmp_path) is None
    (tmp_path / "hparams.json").write_text("{not json")
    with pytest.raises(UserError, match="hparams.json"):
        trial_files.read_hparams(tmp_path)


def test_hparams_and_flags_reproduce_real_algoperf_files(tmp_path):
    trial = ALGOPERF_LOGS / "external_tuning/baseline/study_0/ogbg_jax/trial_1"
    real_hp = json.loads((trial / "hparams.json").read_text())
    hp = collections.namedtuple("Hyperparameters", real_hp)(**real_hp)
    assert trial_files.write_hparams(tmp_path, hp).read_bytes() == (
        trial / "hparams.json").read_bytes()
    flags = json.loads((trial / "flags_0.json").read_text())
    assert trial_files.write_flags(tmp_path, 0, flags).read_bytes() == (
        trial / "flags_0.json").read_bytes()


def test_flags_file_is_named_by_preemption_count(tmp_path):
    path = trial_files.write_flags(tmp_path, 2, {"workload": "mnist", "rng_seed": None})
    assert path.name == "flags_2.json"
    assert json.loads(path.read_text()) == {"workload": "mnist", "rng_seed": None}
    with pytest.raises(ValueError, match="preemption_count"):
        trial_files.write_flags(tmp_path, -1, {})


class _Kind(enum.Enum):
    A = 1


class _Workload:
    """Attributes of each kind meta data must record or skip."""

    eval_batch_size = 128
    target_metric_name = "accuracy"
    validation_target_value = 0.97
    has_test_split = True
    kind = _Kind.A  # not a primitive
    _private = 1

    @property
    def train_mean(self):
        raise NotImplementedError

    @property
    def param_shapes(self):
        return 3

    def step(self):
        return 1


_ALGOPERF_HOST_KEYS = [
    "cpu.util.avg_percent_since_last", "cpu.freq.current", "mem.total", "mem.available",
    "mem.used", "mem.percent_used", "mem.read_bytes_since_boot", "mem.write_bytes_since_boot",
    "net.bytes_sent_since_boot", "net.bytes_recv_since_boot", "os_platform", "python_version",
    "python_compiler", "cpu_model_name", "cpu_count",
]


def test_meta_data_has_algoperf_keys(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML binding: no GPU keys
    path = trial_files.write_meta_data(tmp_path, 1, _Workload(), rng_seed=42)
    assert path.name == "meta_data_1.json"
    meta = json.loads(path.read_text())
    assert {k: v for k, v in meta.items() if k.startswith("workload.")} == {
        "workload.eval_batch_size": 128, "workload.has_test_split": True,
        "workload.target_metric_name": "accuracy", "workload.validation_target_value": 0.97}
    assert set(_ALGOPERF_HOST_KEYS) <= set(meta)
    assert not any(k.startswith("gpu") for k in meta)
    assert list(meta)[-1] == "rng_seed" and meta["rng_seed"] == 42
    assert meta["cpu_count"] == os.cpu_count()
    if "git_commit_hash" in meta:
        assert re.fullmatch(r"[0-9a-f]{40}", meta["git_commit_hash"]) and meta["git_branch"]


def test_meta_data_key_order_follows_a_real_algoperf_file(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    real = json.loads((ALGOPERF_LOGS / "external_tuning/baseline/study_0/ogbg_jax/trial_1/"
                       "meta_data_0.json").read_text())
    ours = trial_files.meta_data(_Workload(), rng_seed=1)
    shared = [k for k in real if k in ours and not k.startswith("workload.")]
    assert shared == [k for k in ours if k in real and not k.startswith("workload.")]
    assert set(_ALGOPERF_HOST_KEYS) <= set(shared)


def _fake_pynvml(gpus: list[dict]) -> types.ModuleType:
    """A stand-in for nvidia-ml-py's module (not installed here), with its call names."""
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = type("NVMLError", (Exception,), {})
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: len(gpus)
    nvml.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    nvml.nvmlDeviceGetName = lambda h: h["name"]
    nvml.nvmlSystemGetDriverVersion = lambda: "550.90.12"
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h["util"])
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(
        total=16384 * 2**20, used=h["used_mib"] * 2**20, free=(16384 - h["used_mib"]) * 2**20)
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: h["temp"]
    return nvml


def test_meta_data_gpu_keys_follow_algoperf_when_nvml_sees_gpus(monkeypatch):
    gpus = [{"name": b"Tesla V100-SXM2-16GB", "util": 14, "used_mib": 12438, "temp": 41},
            {"name": b"Tesla V100-SXM2-16GB", "util": 0, "used_mib": 12422, "temp": 39}]
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(gpus))
    meta = trial_files.meta_data(_Workload(), rng_seed=None)
    assert meta["gpu.count"] == 2 and meta["gpu_count"] == 2
    assert meta["gpu.0.compute.util"] == 0.14
    assert meta["gpu.0.mem.util"] == 12438 / 16384 == 0.7591552734375
    assert meta["gpu.1.mem.total"] == 16384.0 and meta["gpu.1.mem.free"] == 3962.0
    assert meta["gpu.avg.temp.current"] == 40.0
    assert meta["gpu_model_name"] == "Tesla V100-SXM2-16GB"
    assert meta["gpu_driver"] == "550.90.12"
    assert "rng_seed" not in meta
    keys = list(meta)
    assert keys.index("net.bytes_recv_since_boot") < keys.index("gpu.count") < keys.index(
        "os_platform") < keys.index("cpu_count") < keys.index("gpu_model_name")


def test_meta_data_has_no_gpu_keys_when_nvml_cannot_start(monkeypatch):
    nvml = _fake_pynvml([])

    def fail():
        raise nvml.NVMLError("NVML Shared Library Not Found")

    nvml.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert not any(k.startswith("gpu") for k in trial_files.meta_data(_Workload(), 0))
