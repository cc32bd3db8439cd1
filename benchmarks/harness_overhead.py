"""Harness overhead: the runner's median per-step time against a bare loop, on `digits`.

Both sides run the same model, optimizer and batches: the NAdamW self-tuning baseline's own
`data_selection` and `update_params` on the same input pipeline, with the same metrics logger
attached (so the submission logs alike). The bare loop calls them back to back with one fixed
rng; the runner adds everything it does per step (rng derivation, the clock, eval-period and
budget checks, the train_state view, progress checks) and evaluates every 0.25 s as digits
prescribes. The workload's targets are made unreachable so that both sides run every step.
Runner and bare loop alternate, `--repeats` times each, in one process (the two runners in
alternating order, so drift within a repetition cancels), and each side's per-step time is the
median over its repetitions (the machine is noisy: only the ratio means anything).

The runner's per-step time excludes step 1 (compilation) and evals: it is
(submission time at the last eval - submission time at the first) / (steps in between).

The runner runs twice per repetition: without a display, and with `algoperf run`'s live
display (`LiveProgress` on a console that believes it is a terminal, writing to /dev/null), so
the display's effect on the timed loop shows as the ratio of the two per-step times.

Last line: `overhead pytorch=<ratio> jax=<ratio> display_on/off pytorch=<ratio> jax=<ratio>`
(targets <= 1.05 and <= 1.01).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from algoperf import frameworks, random_utils
from algoperf.logs.measurements import MetricLogger
from algoperf.progress import LiveProgress
from algoperf.runner import RunConfig, run
from algoperf.submission import load_submission
from algoperf.workloads import registry

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "submissions" / "nadamw_self_tuning"


def endless_digits(framework: str):
    """A factory of the real digits workload with targets no model reaches."""
    base = type(registry.import_workload("digits", framework))

    class EndlessDigits(base):
        def has_reached_validation_target(self, eval_result):
            return False

        def has_reached_test_target(self, eval_result):
            return False

    return EndlessDigits


def runner_step_time(framework: str, steps: int, out: Path, display: bool = False) -> float:
    """Seconds per step of one runner trial, from its first eval (step 1) to its last; with
    ``display``, under the live display `algoperf run` shows on a terminal."""
    config = RunConfig(
        submission_path=SUBMISSION, workload="digits", framework=framework,
        experiment_dir=out, experiment_name=f"bench_{time.monotonic_ns()}", ruleset="self",
        seed=0, max_global_steps=steps + 1, save_checkpoints=False,
    )
    if display:
        with open(os.devnull, "w") as sink, LiveProgress(
                "benchmark", Console(file=sink, force_terminal=True, width=160)) as progress:
            (result,) = run(config, progress, workload_factory=endless_digits(framework))
    else:
        (result,) = run(config, workload_factory=endless_digits(framework))
    evals = [line for line in (result.trial_dir / "eval_measurements.csv").read_text()
             .splitlines()[1:]]
    header = (result.trial_dir / "eval_measurements.csv").read_text().splitlines()[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in evals]
    first, last = rows[0], rows[-1]
    return ((float(last["score"]) - float(first["score"]))
            / (int(last["global_step"]) - int(first["global_step"])))


def bare_step_time(framework: str, steps: int, out: Path) -> float:
    """Seconds per step of a bare loop calling the same submission functions."""
    submission = load_submission(SUBMISSION, framework)
    workload = endless_digits(framework)()
    workload.attach_metrics_logger(MetricLogger(out))
    rng = random_utils.PRNGKey(0)
    data_rng, opt_rng, model_rng, step_rng = random_utils.split(rng, 4)
    batch_size = submission.get_batch_size("digits")
    queue = workload._build_input_queue(data_rng, "train", "", batch_size)
    params, model_state = workload.init_model_fn(model_rng)
    opt_state = submission.init_optimizer_state(workload, params, model_state, None, opt_rng)
    sync = frameworks.syncer(framework)

    def step(i: int):
        batch = submission.data_selection(workload, queue, opt_state, params, model_state,
                                          None, i, step_rng)
        return submission.update_params(
            workload=workload, current_param_container=params,
            current_params_types=workload.model_params_types, model_state=model_state,
            hyperparameters=None, batch=batch, loss_type=workload.loss_type,
            optimizer_state=opt_state, eval_results=[], global_step=i, rng=step_rng)

    opt_state, params, model_state = step(0)  # compile, as the runner's step 1
    sync((opt_state, params, model_state))
    start = time.perf_counter()
    for i in range(1, steps + 1):
        opt_state, params, model_state = step(i)
    sync((opt_state, params, model_state))
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frameworks", default="pytorch,jax")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="PyTorch intra-op threads for both sides (with 2 threads on 2 busy "
                             "cores PyTorch stalls at random, which swamps the comparison)")
    args = parser.parse_args()
    ratios, display_ratios = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for framework in args.frameworks.split(","):
            frameworks.setup(framework)
            if framework == "pytorch":
                import torch

                torch.set_num_threads(args.torch_threads)
            runner_times, bare_times, shown_times = [], [], []
            for repeat in range(args.repeats):
                bare_times.append(bare_step_time(framework, args.steps,
                                                 Path(tempfile.mkdtemp(dir=tmp))))
                # Alternate which runner goes first, so drift over a repetition cancels.
                for display in (False, True) if repeat % 2 == 0 else (True, False):
                    (shown_times if display else runner_times).append(
                        runner_step_time(framework, args.steps, Path(tmp), display=display))
            r, b = statistics.median(runner_times), statistics.median(bare_times)
            d = statistics.median(shown_times)
            ratios[framework], display_ratios[framework] = r / b, d / r
            print(f"{framework}: runner {r * 1e6:.1f} us/step, with the live display "
                  f"{d * 1e6:.1f} us/step, bare loop {b * 1e6:.1f} us/step "
                  f"({args.repeats} x {args.steps} steps each)")
    print("overhead " + " ".join(f"{fw}={ratio:.3f}" for fw, ratio in ratios.items())
          + " display_on/off " + " ".join(f"{fw}={ratio:.3f}"
                                          for fw, ratio in display_ratios.items()))


if __name__ == "__main__":
    main()
