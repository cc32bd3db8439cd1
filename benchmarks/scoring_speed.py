"""Scoring speed: our scorer against AlgoPerf's own scoring code, on the same logs.

AlgoPerf's scoring code (``scoring/`` of mlcommons/submissions_algorithms) runs beside ours in
its own environment (pandas, absl-py, scipy, tabulate); none of it is part of this project.
Prepare it once:

    git clone https://github.com/mlcommons/submissions_algorithms /tmp/submissions_algorithms
    python3 -m venv /tmp/algoperf-scoring-venv
    /tmp/algoperf-scoring-venv/bin/pip install absl-py numpy pandas matplotlib scipy tabulate

then run

    python benchmarks/scoring_speed.py --algoperf-repo /tmp/submissions_algorithms \\
        --algoperf-python /tmp/algoperf-scoring-venv/bin/python

(or set ALGOPERF_SCORING_REPO and ALGOPERF_SCORING_PYTHON). Two corpora are scored: the v0.6
leaderboard logs in tests/data/algoperf-logs/v0.6 (external tuning and self-tuning), and a
synthetic corpus 20x larger made of copies of those submissions with every trial's clock
scaled by a random factor. What is timed, in a fresh process for each scorer and repeat,
is reading the logs and computing every submission's benchmark score: for AlgoPerf
``get_experiment_df`` per submission, ``compute_performance_profiles`` and
``compute_leaderboard_score``; for us ``algoperf.scoring.score`` with its default 1000
bootstrap replicates (work AlgoPerf does not do). Imports and interpreter start-up are
excluded from both and printed separately.

``max |dscore|`` compares the two scorers' benchmark scores. It is ~1e-15 on the v0.6 logs; on
the synthetic corpus it can be larger because AlgoPerf breaks ties between trials that reach the
target at the same eval by directory-listing order (filesystem-dependent), ours by the smaller
time (see docs/scoring.md).

Last line: ``scoring speedup=<x>``, the smaller of the two corpora's speedups (median times).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOGS = REPO_ROOT / "tests" / "data" / "algoperf-logs" / "v0.6"
TIME_COLUMNS = ("score", "accumulated_submission_time", "total_duration")

# Run by AlgoPerf's interpreter with its repository on sys.path; only calls its functions.
ALGOPERF_DRIVER = r"""
import contextlib, io, json, os, sys, tempfile, time
repo, targets, jobs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, repo)
t0 = time.perf_counter()
from absl import logging
logging.set_verbosity(logging.ERROR)
from scoring import performance_profile, scoring_utils
from scoring.config import WorkloadConfig
from scoring.score_submissions import compute_leaderboard_score
t1 = time.perf_counter()
scores = {}
with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
    config = WorkloadConfig.from_json(targets)
    for directory, self_tuning in jobs:
        results = {name: scoring_utils.get_experiment_df(os.path.join(directory, name))
                   for name in sorted(os.listdir(directory))}
        profile = performance_profile.compute_performance_profiles(
            results, config, time_col="score", min_tau=1.0, max_tau=4.0,
            reference_submission_tag=None, num_points=100, scale="linear", verbosity=0,
            self_tuning_ruleset=self_tuning, strict=False, output_dir=out)
        board = compute_leaderboard_score(profile, normalize=True)
        scores.update({f"{directory}:{k}": float(v) for k, v in board["score"].items()})
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "score": t2 - t1, "scores": scores}))
"""

OUR_DRIVER = r"""
import json, sys, time
jobs = json.loads(sys.argv[1])
t0 = time.perf_counter()
from algoperf.scoring import score
t1 = time.perf_counter()
scores = {}
for directory, self_tuning in jobs:
    report = score([directory], ruleset="self" if self_tuning else "external")
    scores.update({f"{directory}:{s.name}": s.score for s in report.submissions})
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "score": t2 - t1, "scores": scores}))
"""


def _scaled_csv(text: str, factor: float) -> str:
    """The CSV with its clock columns multiplied by ``factor`` (other cells untouched)."""
    lines = text.splitlines()
    if not lines:
        return text
    header = lines[0].split(",")
    scaled = {k for k, name in enumerate(header) if name in TIME_COLUMNS}
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        out.append(",".join(repr(float(c) * factor) if k in scaled and c else c
                            for k, c in enumerate(cells)))
    return "\n".join(out) + "\n"


def make_synthetic(logs: Path, dest: Path, copies: int, seed: int = 0) -> None:
    """``copies`` copies of every submission of each ruleset dir; in each copy the clocks of
    every study and workload are scaled by one random factor (copy 0 is unscaled)."""
    rng = random.Random(seed)
    for ruleset_dir in sorted(p for p in logs.iterdir() if p.is_dir()):
        for submission in sorted(p for p in ruleset_dir.iterdir() if p.is_dir()):
            for k in range(copies):
                factors: dict[Path, float] = {}
                for csv_path in sorted(submission.rglob("eval_measurements.csv")):
                    rel = csv_path.relative_to(submission)
                    group = rel.parent.parent  # study_<k>/<workload>_<framework>
                    factor = factors.setdefault(group, 1.0 if k == 0 else rng.uniform(0.7, 1.4))
                    target = dest / ruleset_dir.name / f"{submission.name}_{k:02d}" / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(_scaled_csv(csv_path.read_text(), factor))


def corpus_jobs(root: Path) -> list[tuple[str, bool]]:
    jobs = []
    for name, self_tuning in (("external_tuning", False), ("self_tuning", True)):
        if (root / name).is_dir():
            jobs.append((str(root / name), self_tuning))
    return jobs


def count_trials(root: Path) -> int:
    return sum(1 for _ in root.rglob("eval_measurements.csv"))


def _run(cmd: list[str], cwd: Path | None = None) -> dict:
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        sys.exit(f"benchmark run failed: {' '.join(cmd[:3])} ...\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def algoperf_targets(repo: Path, dest: Path, workloads: set[str]) -> Path:
    """AlgoPerf's v0.6 targets with the base workloads restricted to those that have logs
    (its v0.6 file lists finewebedu_lm, which the v0.6 leaderboard never ran)."""
    targets = json.loads((repo / "scoring" / "workload_targets.json").read_text())
    targets["base_workloads"] = [w for w in targets["base_workloads"] if w in workloads]
    path = dest / "workload_targets_v06_logged.json"
    path.write_text(json.dumps(targets))
    return path


def logged_workloads(root: Path) -> set[str]:
    names = {p.name.rsplit("_", 1)[0] for p in root.glob("*/*/study_*/*_*") if p.is_dir()}
    return names


def time_corpus(root: Path, repo: Path, python: str, targets: Path, repeats: int) -> dict:
    jobs = json.dumps(corpus_jobs(root))
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_run([sys.executable, "-c", OUR_DRIVER, jobs]))
        theirs.append(_run([python, "-c", ALGOPERF_DRIVER, str(repo), str(targets), jobs],
                           cwd=repo))
    diffs = [abs(ours[0]["scores"][k] - theirs[0]["scores"].get(k, float("nan")))
             for k in ours[0]["scores"]]
    return {
        "ours": statistics.median(r["score"] for r in ours),
        "theirs": statistics.median(r["score"] for r in theirs),
        "ours_import": statistics.median(r["import"] for r in ours),
        "theirs_import": statistics.median(r["import"] for r in theirs),
        "max_score_diff": max(diffs) if diffs else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algoperf-repo", default=os.environ.get("ALGOPERF_SCORING_REPO"),
                        help="checkout of mlcommons/submissions_algorithms (has scoring/)")
    parser.add_argument("--algoperf-python", default=os.environ.get("ALGOPERF_SCORING_PYTHON"),
                        help="python with AlgoPerf scoring's dependencies (pandas, absl-py...)")
    parser.add_argument("--logs", type=Path, default=DEFAULT_LOGS)
    parser.add_argument("--scale", type=int, default=20, help="synthetic corpus size factor")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.algoperf_repo or not (Path(args.algoperf_repo) / "scoring").is_dir():
        sys.exit("pass --algoperf-repo (a checkout of mlcommons/submissions_algorithms); "
                 "see this file's docstring")
    if not args.algoperf_python:
        sys.exit("pass --algoperf-python (an interpreter with pandas, absl-py, scipy, "
                 "tabulate); see this file's docstring")
    if not args.logs.is_dir():
        sys.exit(f"no AlgoPerf v0.6 logs at {args.logs}")
    repo = Path(args.algoperf_repo).resolve()
    with tempfile.TemporaryDirectory(prefix="scoring-speed-") as tmp:
        tmp = Path(tmp)
        targets = algoperf_targets(repo, tmp, logged_workloads(args.logs))
        synthetic = tmp / "synthetic"
        make_synthetic(args.logs, synthetic, args.scale)
        corpora = {"v0.6": args.logs, f"synthetic x{args.scale}": synthetic}
        print(f"{'corpus':<16}{'trials':>8}{'ours s':>10}{'AlgoPerf s':>12}{'speedup':>9}"
              f"{'imports ours/AlgoPerf s':>26}{'max |dscore|':>14}")
        speedups = []
        for name, root in corpora.items():
            r = time_corpus(root, repo, args.algoperf_python, targets, args.repeats)
            speedups.append(r["theirs"] / r["ours"])
            print(f"{name:<16}{count_trials(root):>8}{r['ours']:>10.3f}{r['theirs']:>12.3f}"
                  f"{speedups[-1]:>8.1f}x{r['ours_import']:>13.3f} / {r['theirs_import']:<10.3f}"
                  f"{r['max_score_diff']:>14.2g}")
        shutil.rmtree(synthetic, ignore_errors=True)
    print(f"scoring speedup={min(speedups):.1f}")


if __name__ == "__main__":
    main()
