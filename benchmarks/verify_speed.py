"""Verification speed: `algoperf verify` on a synthetic, signed leaderboard of >= 1 GB.

The tree is what a leaderboard of full-length runs on the v0.6 reference machine would
publish (checkpoints left out, as published leaderboards do): submissions x 3 studies x
workloads x 5 trials, each trial with

- ``events.jsonl``: run_start with a real 8x V100 fingerprint (the fake NVML's DGX-1), a
  ``hardware_sample`` event every 5 s of the run (8 GPUs each, as the runner's sampler writes
  them), an eval every eval period with a checkpoint event after it, and run_end;
- ``eval_measurements.csv`` and ``measurements.csv`` (loss and grad norm every 100 steps),
  written by the runner's own MetricLogger; ``hparams.json``, ``flags_0.json``,
  ``meta_data_0.json``;
- a witness record whose receive times agree with the run's clocks, and the organizer's seal,

so every check runs and passes except the ones a synthetic run cannot (no pinned image: the
verdict is "not certifiable"). What is timed: `verify` (discovery, every trial's checks in
one process per CPU, checks across trials, recomputed scores) plus writing the certificate
and report, the whole of the command's work after start-up. The files are read once untimed
(into the page cache) first; the median of ``--repeats`` runs is reported.

    python benchmarks/verify_speed.py [--tree DIR] [--gigabytes 1.0] [--repeats 5]

The tree is generated once into DIR (default: a temporary directory) and reused when DIR
already holds one of the same size. Last line: ``verify MBps=<x>`` (target >= 200 here).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from algoperf.hardware import nvml as nvml_api
from algoperf.hardware.fake_nvml import FakeNvml, load_machine
from algoperf.hardware.fingerprint import take_fingerprint
from algoperf.hardware.sampling import take_sample
from algoperf.logs.events import GENESIS_PREV, encode_record, line_hash
from algoperf.logs.measurements import MetricLogger
from algoperf.logs.values import json_safe
from algoperf.verification import certificate
from algoperf.verification.context import Options
from algoperf.verification.keys import generate_keypair, load_signing_key, trusted_keys
from algoperf.verification.seal import seal_trial
from algoperf.verification.verify import verify
from algoperf.verification.witness import Witness, _Tail, _write_record
from algoperf.workloads import registry

WORKLOADS = ("ogbg", "wmt", "fastmri", "criteo1tb", "librispeech_conformer")
STUDIES, TRIALS = 3, 5
SAMPLE_SEC = 5.0
RUN_FRACTION = 0.5  # trials run for half the budget, in real time (evals add to it)


def machine_readings() -> tuple[dict, list[dict]]:
    """A DGX-1's fingerprint and a few of its hardware samples, from the fake NVML."""
    with nvml_api.use_nvml(FakeNvml(load_machine("dgx1_v100x8"))):
        fingerprint = take_fingerprint()
        with nvml_api.session() as nvml:
            handles = [nvml.call("nvmlDeviceGetHandleByIndex", i)
                       for i in range(nvml.call("nvmlDeviceGetCount"))]
            samples = [take_sample(nvml, handles) for _ in range(4)]
    return fingerprint.to_json(), samples


class Chain:
    """Hash-chained lines in the runner's EventLog format, written in one go."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.prev = GENESIS_PREV
        self.times: list[float] = []  # t_mono of each line

    def append(self, kind: str, data: dict, t_mono: float, wall0: float) -> None:
        line = encode_record({"seq": len(self.lines), "type": kind, "t_wall": wall0 + t_mono,
                              "t_mono": t_mono, "data": json_safe(data), "prev": self.prev})
        self.prev = line_hash(line)
        self.lines.append(line)
        self.times.append(t_mono)


def write_trial(trial_dir: Path, workload: str, study: int, trial: int, seed: int,
                fingerprint: dict, samples: list[dict], rng: random.Random, key) -> None:
    info = registry.get_workload(workload)
    budget = registry.get_rules("v0.6").budget(workload, "external")
    period = info.eval_period_time_sec
    hyperparameters = {"learning_rate": rng.uniform(1e-4, 1e-2), "beta2": 0.999}
    trial_dir.mkdir(parents=True)
    chain, wall0, t = Chain(), 1.8e9 + seed, 100.0 + rng.random()
    chain.append("run_start", {
        "workload": workload, "framework": "jax", "rules_version": "v0.6",
        "ruleset": "external", "study": study, "trial": trial, "submission": "/submission",
        "submission_sha256": "ab" * 32, "hyperparameters": hyperparameters, "seed": seed,
        "master_seed": 1, "budget_sec": budget, "eval_period_sec": period, "batch_size": 256,
        "eval_batch_size": 256, "max_global_steps": None,
        "validation_target": info.validation_target_value, "test_target": info.test_target_value,
        "target_metric": info.target_metric_name, "fingerprint": fingerprint,
        "fingerprint_digest": fingerprint["digest"], "reference": "v100x8-v0.6",
        "certifiable": False, "reference_differences": [], "image_digest": None,
        "lockfile_sha256": None, "dataset_manifest_root": "cd" * 32}, t, wall0)
    logger = MetricLogger(trial_dir)
    start, sub, ev, lg, step, last_eval_end = t + 5.0, 0.0, 0.0, 0.0, 0, -math.inf
    next_sample, steps_per_sec, evals = t, rng.uniform(2.0, 6.0), 0
    target, metric = info.validation_target_value, f"validation/{info.target_metric_name}"
    best = -math.inf if info.direction == "max" else math.inf
    while sub < budget * RUN_FRACTION:
        wait = max(period - (start + sub + ev + lg - last_eval_end), 1.0)
        for _ in range(int(wait * steps_per_sec / 100)):
            step += 100
            logger.append_scalar_metrics({"loss": rng.random(), "grad_norm": rng.random()},
                                         step)
        sub += wait
        while next_sample < start + sub + ev + lg:
            chain.append("hardware_sample", samples[len(chain.lines) % len(samples)],
                         next_sample, wall0)
            next_sample += SAMPLE_SEC
        step += 1
        eval_time = rng.uniform(0.05, 0.15) * period
        ev += eval_time
        progress = sub / budget
        value = (target * (1.2 - 0.3 * progress) if info.direction == "min"
                 else target * (0.8 + 0.3 * progress))
        best = min(best, value) if info.direction == "min" else max(best, value)
        metrics = {f"train/{info.target_metric_name}": value, "train/loss": 1 - progress,
                   metric: value, "validation/loss": 1.1 - progress,
                   "validation/num_examples": 50000, f"test/{info.target_metric_name}": value,
                   "test/loss": 1.1 - progress, "test/num_examples": 50000, "score": sub,
                   "total_duration": sub + ev + lg + 5.0, "accumulated_submission_time": sub,
                   "accumulated_eval_time": ev, "accumulated_logging_time": lg}
        last_eval_end = start + sub + ev + lg
        logger.append_scalar_metrics(metrics, step, 0, is_eval=True)
        reached = {split: (best < goal) if info.direction == "min" else (best > goal)
                   for split, goal in (("validation", target),
                                       ("test", info.test_target_value))}
        chain.append("eval", {"global_step": step, "preemption_count": 0, "metrics": metrics,
                              "validation_goal_reached": reached["validation"],
                              "test_goal_reached": reached["test"]},
                     last_eval_end + 0.01, wall0)
        evals += 1
        chain.append("checkpoint", {"name": f"checkpoint_{step}", "global_step": step,
                                    "bytes": 10**8}, last_eval_end + 0.5, wall0)
        lg += 0.6
    logger.append_scalar_metrics({"score": sub}, step, 0)
    chain.append("run_end", {"status": "completed", "reason": "budget_exhausted",
                             "accumulated_submission_time": sub + 1.0, "global_step": step,
                             "num_evals": evals,
                             "error": None}, start + sub + ev + lg + 1.0, wall0)
    (trial_dir / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in chain.lines))
    (trial_dir / "hparams.json").write_text(json.dumps(hyperparameters, indent=2))
    for name in ("flags_0.json", "meta_data_0.json"):
        (trial_dir / name).write_text(json.dumps({"rng_seed": seed, "workload": workload},
                                                 indent=2))
    _witness(trial_dir, chain, key)
    seal_trial(trial_dir, key, {"submission_sha256": "ab" * 32})


def _witness(trial_dir: Path, chain: Chain, key) -> None:
    """A witness record that read each line 20 ms after it was written, on the run's clock."""
    tail = _Tail(trial_dir / "events.jsonl", 0.0, chain.times[0])
    for number, (line, t_mono) in enumerate(zip(chain.lines, chain.times, strict=True), 1):
        tail.digest.update(line + b"\n")
        if b'"type":"hardware_sample"' not in line[:40]:
            tail.observations.append([number, line_hash(line), 1.8e9 + t_mono + 0.02,
                                      t_mono + 0.02])
    tail.lines, tail.head = len(chain.lines), chain.prev
    tail.offset = sum(len(line) + 1 for line in chain.lines)
    witness = Witness(trial_dir, observer={"name": "verify_speed.py"})
    _write_record(trial_dir, tail, key, witness._predicate(tail))


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def generate(root: Path, gigabytes: float, key_path: Path) -> None:
    """Submissions of STUDIES x WORKLOADS x TRIALS trials until the tree holds ``gigabytes``."""
    fingerprint, samples = machine_readings()
    key = load_signing_key(key_path)
    rng = random.Random(0)
    board = root / "leaderboard"
    seed, submission = 1, 0
    started = time.perf_counter()
    while tree_size(root) < gigabytes * 1e9:
        for study in range(STUDIES):
            for workload in WORKLOADS:
                for trial in range(1, TRIALS + 1):
                    path = (board / f"submission_{submission}" / f"study_{study}"
                            / f"{workload}_jax" / f"trial_{trial}")
                    write_trial(path, workload, study, trial, seed, fingerprint, samples,
                                rng, key)
                    seed += 1
        submission += 1
        print(f"  generated submission {submission}: {tree_size(root) / 1e9:.2f} GB "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=None)
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="verify-speed-")) if args.tree is None else None
    root = args.tree or scratch
    try:
        keys = root / "keys"
        if not (keys / "organizer.key").exists() or tree_size(root / "leaderboard") < \
                args.gigabytes * 1e9:
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            generate_keypair(keys)
            generate(root, args.gigabytes, keys / "organizer.key")
        options = Options(trusted=trusted_keys([keys / "organizer.pub"]))
        for path in (root / "leaderboard").rglob("*"):  # into the page cache, untimed
            if path.is_file():
                path.read_bytes()
        seconds, result = [], None
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                t0 = time.perf_counter()
                result = verify(root / "leaderboard", options)
                certificate.write_outputs(result, out)
                seconds.append(time.perf_counter() - t0)
        assert result is not None
        statuses = {}
        for trial in result.trials:
            for c in trial.checks:
                statuses.setdefault(c.name, set()).add(c.status)
        megabytes = result.bytes_read / 1e6
        median = statistics.median(seconds)
        events = sum(p.stat().st_size for p in (root / "leaderboard").rglob("events.jsonl"))
        print(f"tree: {len(result.trials)} trials, {megabytes:.0f} MB "
              f"({events / 1e6:.0f} MB of event logs)")
        print(f"verdict: {result.verdict}; check statuses: "
              + ", ".join(f"{k}={'/'.join(sorted(v))}" for k, v in statuses.items()))
        print(f"runs: {', '.join(f'{s:.2f}s' for s in seconds)} (median {median:.2f}s)")
        print(f"verify MBps={megabytes / median:.0f}")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
