"""Criteo 1TB input pipeline: examples/s on this machine's cores and peak host memory at
AlgoPerf's batch sizes, on synthetic day files in the official TSV format.

Writes ``--train-lines`` training lines (two days of two files each) and ``--eval-lines``
validation lines (day 23's files 19-35) with ``algoperf.datasets.criteo1tb.write_synthetic``,
then, each in its own process so that its peak resident memory (``VmHWM``) is its own:

- training: ``--batches`` batches of 262,144 lines (AlgoPerf's baseline batch) of our
  stream, parsed and hashed on a thread per core, timed after the first;
- a full evaluation: one pass over the validation files at JAX's eval batch of 131,072;
- the straightforward alternative, side by side: the same lines split in Python and hashed
  field by field with the pyfarmhash bindings (TensorFlow, AlgoPerf's pipeline, is not
  installed here), on ``--baseline-lines`` lines.

Both streams check their first batch against the alternative's values. Last: the examples/s
the reference machine needs to keep pace with AlgoPerf's JAX baseline there (8,596 steps of
262,144 in 7,703 s: its criteo1tb_jax log, study 0, trial 1), against what one core gives.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from algoperf.datasets import criteo1tb as criteo_data
from algoperf.workloads.criteo1tb import input_pipeline as ip

TRAIN_BATCH = 262_144
EVAL_BATCH = 131_072
REFERENCE_STEPS, REFERENCE_SECONDS = 8_596, 7_703.3


def rss_mb() -> float:
    """This process's peak resident memory (VmHWM: since its exec, unlike ``ru_maxrss``,
    which keeps the parent's peak across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def baseline_examples(lines: list[bytes]) -> np.ndarray:
    """The lines parsed in plain Python, hashed with pyfarmhash (the obvious way)."""
    import farmhash

    vocab = [int(v) for v in ip.RAW_VOCAB_SIZES]
    rows = []
    for line in lines:
        fields = line.decode().rstrip("\n").split("\t")
        dense = [np.log(max(float(c), 0.0) + 1) if c not in ("", "-1") else 0.0
                 for c in fields[1:14]]
        ids = [farmhash.fingerprint64((v if v not in ("", "-1") else "00000000") + str(c))
               % vocab[c] for c, v in enumerate(fields[14:])]
        rows.append(dense + ids)
    return np.asarray(rows, np.float32)


def child(kind: str, directory: Path, batches: int, baseline_lines: int) -> dict:
    before = rss_mb()
    if kind == "baseline":
        lines = []
        for path, _ in criteo_data.split_files(directory, "train"):
            with open(path, "rb") as f:
                lines += f.readlines()
        lines = lines[:baseline_lines]
        start = time.perf_counter()
        baseline_examples(lines)
        seconds = time.perf_counter() - start
        return {"examples_per_s": len(lines) / seconds, "peak_rss_mb": rss_mb(),
                "rss_before_mb": before}
    if kind == "train":
        stream = ip.TrainBatches(criteo_data.split_files(directory, "train"), TRAIN_BATCH, 0)
        first = next(stream)
        reference = baseline_examples(_first_lines(
            [criteo_data.split_files(directory, "train")[i][0]
             for i in np.random.default_rng([0, 0]).permutation(4)], 200))
        np.testing.assert_allclose(first["inputs"][:200], reference, rtol=1e-6)
        start = time.perf_counter()
        for _ in range(batches):
            next(stream)
        seconds = time.perf_counter() - start
        return {"examples_per_s": batches * TRAIN_BATCH / seconds, "peak_rss_mb": rss_mb(),
                "rss_before_mb": before}
    files = criteo_data.split_files(directory, "validation")
    start = time.perf_counter()
    total = 0
    for batch in ip.eval_batches(files, EVAL_BATCH, repeat=False):
        total += int(batch["weights"].sum())
    seconds = time.perf_counter() - start
    assert total == sum(n for _, n in files)
    return {"examples_per_s": total / seconds, "peak_rss_mb": rss_mb(), "rss_before_mb": before,
            "examples": total}


def _first_lines(paths: list[Path], count: int) -> list[bytes]:
    lines: list[bytes] = []
    for path in paths:
        with open(path, "rb") as f:
            lines += f.readlines()
        if len(lines) >= count:
            break
    return lines[:count]


def run_child(kind: str, directory: Path, batches: int, baseline_lines: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--dir", str(directory),
                           "--batches", str(batches), "--baseline-lines", str(baseline_lines)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-lines", type=int, default=4 * TRAIN_BATCH + 1000)
    parser.add_argument("--eval-lines", type=int, default=3 * EVAL_BATCH + 12_345)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--baseline-lines", type=int, default=20_000)
    parser.add_argument("--child", choices=("train", "eval", "baseline"))
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dir, args.batches, args.baseline_lines)))
        return
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        directory = criteo_data.write_synthetic(Path(tmp), num_train=args.train_lines,
                                                num_test=0, num_validation=args.eval_lines)
        size = sum(p.stat().st_size for p in directory.glob("day_*"))
        print(f"synthetic data: {args.train_lines:,} training and {args.eval_lines:,} "
              f"validation lines, {size / 1e6:.0f} MB, written in "
              f"{time.perf_counter() - start:.0f} s")
        train = run_child("train", directory, args.batches, args.baseline_lines)
        evaluation = run_child("eval", directory, args.batches, args.baseline_lines)
        baseline = run_child("baseline", directory, args.batches, args.baseline_lines)
    print(f"train, batch {TRAIN_BATCH:,} ({cores} cores): {train['examples_per_s']:,.0f} "
          f"examples/s, peak RSS {train['peak_rss_mb']:,.0f} MB "
          f"({train['rss_before_mb']:,.0f} MB after imports)")
    print(f"full eval, batch {EVAL_BATCH:,}, {evaluation['examples']:,} lines: "
          f"{evaluation['examples_per_s']:,.0f} examples/s, peak RSS "
          f"{evaluation['peak_rss_mb']:,.0f} MB ({evaluation['rss_before_mb']:,.0f} MB after "
          "imports)")
    print(f"Python split + pyfarmhash, one core: {baseline['examples_per_s']:,.0f} examples/s")
    needed = REFERENCE_STEPS * TRAIN_BATCH / REFERENCE_SECONDS
    per_core = train["examples_per_s"] / cores
    print(f"reference machine needs {needed:,.0f} examples/s (AlgoPerf's JAX baseline: "
          f"{REFERENCE_SECONDS / REFERENCE_STEPS:.3f} s per step of {TRAIN_BATCH:,}); one core "
          f"here gives {per_core:,.0f}: {needed / per_core:.1f} cores")
    print(f"criteo1tb pipeline: {train['examples_per_s']:,.0f} examples/s on {cores} cores, "
          f"{train['examples_per_s'] / baseline['examples_per_s']:.1f}x Python+pyfarmhash; "
          f"peak RSS {train['peak_rss_mb']:,.0f} MB at batch {TRAIN_BATCH:,}, "
          f"{evaluation['peak_rss_mb']:,.0f} MB through a full eval")


if __name__ == "__main__":
    main()
