"""Sweep overhead: per-job scheduling overhead (submit to first training step) on the local
executor and on the Slurm cluster, and the wall time of a grid at local parallelism 2 against
the sum of its job times.

Jobs are `algoperf run` on the host (NAdamW, PyTorch, `digits`, a few hundred steps at most),
one thread each (OMP_NUM_THREADS=1) so two jobs share the two cores without fighting.

- submit -> first step: from handing the job over (the local executor starting the process;
  sbatch for Slurm) to its ``run_start`` event, written just before the training loop starts.
  It includes Python, PyTorch and workload start-up, which any job pays; ``slurm_sched_s`` is
  the part Slurm adds (sbatch to the batch script starting). Slurm is measured on a two-job
  array, so both jobs start at once on the two-CPU node and no queueing is counted.
- grid: six jobs at ``--parallel 2``; wall = first start to last end, job sum = the sum of
  each job's own start-to-end time; speedup = sum / wall (2.0 is perfect on two slots).

Slurm figures need a cluster that answers (`.ci/slurm-up` starts a one-node one); without one
they print as n/a. Last line:
``sweep local_overhead_s=<x> slurm_overhead_s=<y> slurm_sched_s=<z> grid_wall_s=<w>
job_sum_s=<s> parallel_speedup=<r>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from algoperf.logs import events as ev
from algoperf.sweep import ExecOptions, Plan, launch, make_plan, write_plan
from algoperf.sweep.execute import wait_for_slurm
from algoperf.sweep.job_records import read_attempts, read_runs

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "submissions" / "nadamw" / "submission_pytorch.py"


def plan(out: Path, studies: int, trials: int, steps: int) -> Plan:
    p = make_plan(out, SUBMISSION, workloads=("digits",), num_studies=studies,
                  num_trials=trials, max_global_steps=steps)
    write_plan(p)
    return p


def run_start(p: Plan, job) -> float:
    path = p.trial_dir(job) / ev.EVENTS_FILENAME
    return next(r["t_wall"] for r in ev.read_events(path) if r["type"] == ev.RUN_START)


def local_overhead(work: Path, steps: int) -> list[float]:
    """Executor start of each job to its run_start, one job at a time."""
    p = plan(work / "local", 1, 3, steps)
    launch(p, p.jobs, ExecOptions(runtime="host", parallel=1), "run")
    return [run_start(p, j) - read_attempts(p.jobs_dir, j.label)[0].start["t"] for j in p.jobs]


def slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0


def slurm_overhead(work: Path, steps: int) -> tuple[list[float], list[float]]:
    """sbatch to run_start, and sbatch to the batch script's start, for a two-job array."""
    p = plan(work / "slurm", 1, 2, steps)
    launched = launch(p, p.jobs, ExecOptions(executor="slurm", runtime="host"), "run")
    submitted = read_runs(p.jobs_dir)[-1]["t"]
    wait_for_slurm(p, launched.slurm_array, None, timeout=600)
    total = [run_start(p, j) - submitted for j in p.jobs]
    sched = [read_attempts(p.jobs_dir, j.label)[0].start["t"] - submitted for j in p.jobs]
    return total, sched


def grid(work: Path, steps: int) -> tuple[float, float]:
    """Wall time of six jobs at parallelism 2, and the sum of their own times."""
    p = plan(work / "grid", 3, 2, steps)
    launch(p, p.jobs, ExecOptions(runtime="host", parallel=2), "run")
    attempts = [read_attempts(p.jobs_dir, j.label)[0] for j in p.jobs]
    wall = max(a.end["t"] for a in attempts) - min(a.start["t"] for a in attempts)
    return wall, sum(a.duration for a in attempts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="--max-global-steps per job")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every job
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        work = Path(tmp)
        local = local_overhead(work, args.steps)
        print(f"local: submit -> first step {', '.join(f'{x:.2f}' for x in local)} s")
        if slurm_answers():
            total, sched = slurm_overhead(work, args.steps)
            print(f"slurm: submit -> first step {', '.join(f'{x:.2f}' for x in total)} s, "
                  f"of which sbatch -> job start {', '.join(f'{x:.2f}' for x in sched)} s")
            slurm_s, sched_s = f"{statistics.median(total):.2f}", f"{statistics.median(sched):.2f}"
        else:
            print("slurm: no cluster answers (start one with .ci/slurm-up); skipped")
            slurm_s = sched_s = "n/a"
        t0 = time.perf_counter()
        wall, total_jobs = grid(work, args.steps)
        print(f"grid: 6 jobs at parallel 2 in {wall:.1f} s wall ({time.perf_counter() - t0:.1f} "
              f"s with planning), job times sum to {total_jobs:.1f} s")
    print(f"sweep local_overhead_s={statistics.median(local):.2f} slurm_overhead_s={slurm_s} "
          f"slurm_sched_s={sched_s} grid_wall_s={wall:.1f} job_sum_s={total_jobs:.1f} "
          f"parallel_speedup={total_jobs / wall:.2f}")


if __name__ == "__main__":
    main()
