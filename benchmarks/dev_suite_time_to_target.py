"""A baseline's time to target on each dev-suite workload, median over seeds, per framework.

Each seed is one `algoperf run` trial (a different Halton draw of NAdamW's search space; one
PyTorch thread, no checkpoints), run in its own process as a user runs it; a trial's time to
target is the score of its first eval beating the target (inf if none did). The machine's
load is printed beside the figures, since a shared machine slows every run.

    python benchmarks/dev_suite_time_to_target.py [--seeds 5] [--frameworks jax,pytorch]
        [--workloads tabular,mnist1d,charlm] [--algorithm nadamw]

``--algorithm`` names a reference submission (default NAdamW; ``momentum`` gives the weaker
baseline the dev suite's targets are set against).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from algoperf.workloads import registry

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "submissions"


def time_to_target(trial: Path, info: registry.WorkloadInfo) -> float:
    with open(trial / "eval_measurements.csv") as f:
        for row in csv.DictReader(f):
            if info.reached(float(row[f"validation/{info.target_metric_name}"])):
                return float(row["score"])
    return math.inf


def run_trial(algorithm: str, workload: str, framework: str, seed: int, out: Path) -> float:
    folder = SUBMISSIONS / algorithm
    done = subprocess.run(
        [sys.executable, "-m", "algoperf", "run", "--submission",
         str(folder / f"submission_{framework}.py"), "--workload", workload, "--framework",
         framework, "--tuning-search-space", str(folder / "tuning_search_space.json"),
         "--num-studies", "1", "--num-tuning-trials", "1", "--seed", str(seed),
         "--experiment-dir", str(out), "--experiment-name", algorithm, "--no-save-checkpoints"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    trial = out / algorithm / "study_0" / f"{workload}_{framework}" / "trial_1"
    # Exit 1: the trial ended without completing (a diverged draw), which never reaches.
    if done.returncode not in (0, 1) or not (trial / "eval_measurements.csv").is_file():
        sys.exit(f"{workload} {framework} seed {seed}: {done.stderr.strip()[-500:]}")
    return time_to_target(trial, registry.get_workload(workload))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--frameworks", default="pytorch,jax")
    parser.add_argument("--workloads", default=",".join(registry.DEV_SUITE))
    parser.add_argument("--algorithm", default="nadamw")
    args = parser.parse_args()
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for framework in args.frameworks.split(","):
            for workload in args.workloads.split(","):
                times = [run_trial(args.algorithm, workload, framework, seed,
                                   Path(tmp, f"{workload}_{framework}_{seed}"))
                         for seed in range(1, args.seeds + 1)]
                reached = sum(t < math.inf for t in times)
                print(f"{workload} {framework}: " + ", ".join(f"{t:.2f}" for t in times),
                      flush=True)
                figures.append(f"{workload}/{framework} {statistics.median(times):.2f} s "
                               f"({reached}/{len(times)})")
    load = os.getloadavg()[0]
    print(f"{args.algorithm} median time to target (load {load:.1f}): " + "; ".join(figures))


if __name__ == "__main__":
    main()
