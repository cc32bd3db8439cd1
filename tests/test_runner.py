"""The runner's timing rules, stopping rules and bad-submission handling, on real `digits` runs."""

from __future__ import annotations

import json
import math
import textwrap
import time
from pathlib import Path

import pytest

from algoperf.errors import UserError
from algoperf.logs.events import read_events, verify_chain
from algoperf.logs.measurements import read_measurements
from algoperf.runner import RunConfig, run
from algoperf.tuning import plan_trials
from algoperf.workloads import registry

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "submissions" / "nadamw_self_tuning" / "submission_pytorch.py"
SEARCH_SPACE = ROOT / "submissions" / "nadamw" / "tuning_search_space.json"


def write_submission(folder: Path, body: str, name: str = "submission.py") -> Path:
    """A submission that starts from the self-tuning NAdamW baseline and changes ``body``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(f"""\
        import importlib.util as _u
        _spec = _u.spec_from_file_location("_baseline", {str(BASELINE)!r})
        _base = _u.module_from_spec(_spec)
        _spec.loader.exec_module(_base)
        get_batch_size = _base.get_batch_size
        init_optimizer_state = _base.init_optimizer_state
        update_params = _base.update_params
        data_selection = _base.data_selection
        prepare_for_eval = _base.prepare_for_eval
        """) + textwrap.dedent(body))
    return path


def config(tmp_path: Path, submission: Path, **overrides) -> RunConfig:
    values = dict(submission_path=submission, workload="digits", framework="pytorch",
                  experiment_dir=tmp_path / "exp", experiment_name="test", ruleset="self",
                  seed=0, max_global_steps=20, save_checkpoints=False)
    values.update(overrides)
    return RunConfig(**values)


def evals(result) -> list[dict[str, str]]:
    return read_measurements(result.trial_dir / "eval_measurements.csv")


def test_sleep_in_update_params_is_charged_as_submission_time(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        import time
        def update_params(**kwargs):
            time.sleep(0.05)
            return _base.update_params(**kwargs)
        """)
    (result,) = run(config(tmp_path, sub, max_global_steps=10))
    assert result.global_step == 10
    assert result.accumulated_submission_time >= 10 * 0.05


def test_prepare_for_eval_time_is_charged(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        import time
        def prepare_for_eval(**kwargs):
            time.sleep(0.2)
            return _base.prepare_for_eval(**kwargs)
        """)
    (result,) = run(config(tmp_path, sub, max_global_steps=3))
    rows = evals(result)
    assert float(rows[-1]["score"]) >= 0.2 * len(rows)


class SlowEvalDigits:
    """The real digits workload with an eval that takes at least 0.3 s per split."""

    def __new__(cls):
        import time

        base = type(registry.import_workload("digits", "pytorch"))

        class Slow(base):
            def _eval_model_on_split(self, *args, **kwargs):
                time.sleep(0.3)
                return super()._eval_model_on_split(*args, **kwargs)

        return Slow()


def test_eval_time_is_not_charged_and_clocks_add_up(tmp_path):
    sub = write_submission(tmp_path / "sub", "")
    (result,) = run(config(tmp_path, sub, max_global_steps=5), workload_factory=SlowEvalDigits)
    last = evals(result)[-1]
    eval_time = float(last["accumulated_eval_time"])
    assert eval_time >= 0.3 * 3 * len(evals(result))
    # Submission, eval and logging time partition the wall time: eval is not in the score.
    assert float(last["score"]) + eval_time + float(last["accumulated_logging_time"]) <= (
        float(last["total_duration"]) + 1e-6)


def test_first_eval_is_after_step_one_and_evals_respect_the_eval_period(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        import time
        def update_params(**kwargs):  # never learns, so no target ends the run early
            time.sleep(0.02)
            return kwargs["optimizer_state"], kwargs["current_param_container"], None
        """)
    (result,) = run(config(tmp_path, sub, max_global_steps=150))
    rows = evals(result)
    assert int(rows[0]["global_step"]) == 1
    period = registry.get_workload("digits").eval_period_time_sec
    for prev, row in zip(rows, rows[1:-1], strict=False):
        eval_start = float(row["total_duration"]) - (
            float(row["accumulated_eval_time"]) - float(prev["accumulated_eval_time"]))
        assert eval_start - float(prev["total_duration"]) >= period - 1e-6
    assert int(rows[-1]["global_step"]) == 150  # the final eval at max_global_steps


class TinyBudgetDigits:
    def __new__(cls):
        base = type(registry.import_workload("digits", "pytorch"))

        class Tiny(base):
            @property
            def max_allowed_runtime_sec(self):
                return 0.5

        return Tiny()


def test_budget_is_checked_at_eval_points_and_stops_the_run(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        import time
        def update_params(**kwargs):
            time.sleep(0.05)
            return _base.update_params(**kwargs)
        """)
    cfg = config(tmp_path, sub, max_global_steps=None, ruleset="external",
                 tuning_search_space=SEARCH_SPACE, num_tuning_trials=1)
    (result,) = run(cfg, workload_factory=TinyBudgetDigits)
    assert result.reason == "budget_exhausted"
    rows = evals(result)
    assert all(float(r["score"]) < 0.5 for r in rows)  # no eval past the budget
    assert result.accumulated_submission_time >= 0.5
    assert math.isinf(result.time_to_target)


def test_training_complete_error_stops_after_a_final_eval(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        from algoperf import spec
        def update_params(**kwargs):
            if kwargs["global_step"] == 7:
                raise spec.TrainingCompleteError()
            return _base.update_params(**kwargs)
        """)
    (result,) = run(config(tmp_path, sub, max_global_steps=None))
    assert result.reason == "training_complete"
    assert result.global_step == 8
    assert int(evals(result)[-1]["global_step"]) == 8


def test_train_state_is_a_read_only_live_view_when_asked_for(tmp_path):
    seen_file = tmp_path / "seen.jsonl"
    sub = write_submission(tmp_path / "sub", f"""
        import json
        def update_params(workload, current_param_container, current_params_types,
                          model_state, hyperparameters, batch, loss_type, optimizer_state,
                          eval_results, global_step, rng, train_state=None):
            seen = dict(train_state, read_only=False)
            try:
                train_state["is_time_remaining"] = False
            except TypeError:
                seen["read_only"] = True
            with open({str(seen_file)!r}, "a") as f:
                f.write(json.dumps(seen) + "\\n")
            return _base.update_params(
                workload=workload, current_param_container=current_param_container,
                current_params_types=current_params_types, model_state=model_state,
                hyperparameters=hyperparameters, batch=batch, loss_type=loss_type,
                optimizer_state=optimizer_state, eval_results=eval_results,
                global_step=global_step, rng=rng)
        """)
    run(config(tmp_path, sub, max_global_steps=5))
    seen = [json.loads(line) for line in seen_file.read_text().splitlines()]
    assert len(seen) == 5 and all(s["read_only"] for s in seen)
    assert seen[-1]["accumulated_submission_time"] > 0
    assert set(seen[0]) >= {"validation_goal_reached", "test_goal_reached", "is_time_remaining",
                            "last_eval_time", "training_complete",
                            "accumulated_submission_time", "accumulated_eval_time",
                            "accumulated_logging_time", "last_step_end_time"}


def test_target_reached_stops_and_time_to_target_is_the_score_of_that_eval(tmp_path):
    (result,) = run(config(tmp_path, BASELINE, max_global_steps=None))
    assert result.reason == "targets_reached"
    rows = evals(result)
    target = registry.get_workload("digits").validation_target_value
    hit = [r for r in rows if float(r["validation/accuracy"]) >= target]
    assert result.time_to_target == pytest.approx(float(hit[0]["score"]))
    assert not verify_chain(result.trial_dir / "events.jsonl")


def test_output_layout_and_algoperf_files(tmp_path):
    cfg = config(tmp_path, ROOT / "submissions" / "nadamw" / "submission_pytorch.py",
                 ruleset="external", tuning_search_space=SEARCH_SPACE, num_tuning_trials=2,
                 num_studies=2, max_global_steps=3)
    results = run(cfg)
    assert [(r.study, r.trial) for r in results] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    for r in results:
        assert r.trial_dir == (tmp_path / "exp" / "test" / f"study_{r.study}" / "digits_pytorch"
                               / f"trial_{r.trial}")
        names = {p.name for p in r.trial_dir.iterdir()}
        assert {"hparams.json", "flags_0.json", "meta_data_0.json", "measurements.csv",
                "eval_measurements.csv", "events.jsonl"} <= names
        header = (r.trial_dir / "eval_measurements.csv").read_text().splitlines()[0].split(",")
        assert header == sorted(header)
        assert {"score", "accumulated_submission_time", "global_step", "preemption_count",
                "validation/accuracy", "total_duration"} <= set(header)
    seeds = [read_events(r.trial_dir / "events.jsonl")[0]["data"]["seed"] for r in results]
    assert len(set(seeds)) == 4  # every trial has its own seed
    hparams = [json.loads((r.trial_dir / "hparams.json").read_text()) for r in results]
    assert hparams[0] != hparams[1]


def test_trial_plan_is_reproducible_and_studies_do_not_depend_on_what_else_runs(tmp_path):
    cfg = config(tmp_path, BASELINE, ruleset="external", tuning_search_space=SEARCH_SPACE,
                 num_tuning_trials=3, num_studies=2)
    both = plan_trials(cfg, seed=7)
    assert plan_trials(cfg, seed=7) == both
    from dataclasses import replace

    only_second = plan_trials(replace(cfg, study=1), seed=7)
    assert only_second[1] == both[1]
    assert plan_trials(cfg, seed=8) != both


def test_trial_i_gets_the_same_hyperparameters_whether_2_or_5_trials_are_asked_for(tmp_path):
    from dataclasses import replace

    cfg = config(tmp_path, BASELINE, ruleset="external", tuning_search_space=SEARCH_SPACE,
                 num_studies=3)
    two = plan_trials(replace(cfg, num_tuning_trials=2), seed=7)
    five = plan_trials(replace(cfg, num_tuning_trials=5), seed=7)
    assert all(two[k] == five[k][:2] for k in range(3))
    assert len({hp for k in five for _, hp in five[k]}) == 15  # every study its own points
    # Past the rules' 5 trials and 3 studies (v0.6) the earlier trials still keep their points.
    more = plan_trials(replace(cfg, num_tuning_trials=8, num_studies=4), seed=7)
    assert all(more[k][:5] == five[k] for k in range(3))
    assert len({hp for k in more for _, hp in more[k]}) == 32
    assert plan_trials(replace(cfg, num_tuning_trials=5, num_studies=1), seed=7)[0] == five[0]


def test_a_two_trial_run_trains_the_first_two_trials_of_the_five_trial_run(tmp_path):
    submission = ROOT / "submissions" / "nadamw" / "submission_pytorch.py"
    runs = {n: run(config(tmp_path, submission, experiment_name=f"trials_{n}", ruleset="external",
                          tuning_search_space=SEARCH_SPACE, num_tuning_trials=n,
                          max_global_steps=1))
            for n in (2, 5)}

    def trained(result):
        start = read_events(result.trial_dir / "events.jsonl")[0]["data"]
        return start["seed"], start["hyperparameters"], (result.trial_dir / "hparams.json"
                                                           ).read_bytes()

    assert [trained(r) for r in runs[2]] == [trained(r) for r in runs[5][:2]]


# --- bad input: one clear line, nothing written that looks complete ---------------------------


def test_missing_submission_path_says_what_to_pass(tmp_path):
    with pytest.raises(UserError, match="does not exist; pass the path"):
        run(config(tmp_path, tmp_path / "nope.py"))
    assert not (tmp_path / "exp").exists()


def test_syntax_error_in_submission_names_the_line(tmp_path):
    sub = tmp_path / "sub" / "submission.py"
    sub.parent.mkdir()
    sub.write_text("def get_batch_size(name):\n    return 64\ndef oops(:\n")
    with pytest.raises(UserError, match="syntax error at line 3"):
        run(config(tmp_path, sub))


def test_missing_function_is_named(tmp_path):
    sub = tmp_path / "sub" / "submission.py"
    sub.parent.mkdir()
    sub.write_text("def get_batch_size(name):\n    return 64\n")
    with pytest.raises(UserError, match="does not define init_optimizer_state, update_params"):
        run(config(tmp_path, sub))


def test_wrong_signature_is_reported_before_training(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        def update_params(workload, params, batch):
            return None
        """)
    with pytest.raises(UserError, match="update_params lacks parameter"):
        run(config(tmp_path, sub))
    assert not (tmp_path / "exp").exists()


def test_wrong_return_type_fails_the_trial_and_keeps_its_logs(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        def update_params(**kwargs):
            return kwargs["optimizer_state"]
        """)
    (result,) = run(config(tmp_path, sub))
    assert result.status == "failed" and math.isinf(result.time_to_target)
    assert "update_params returned" in result.error
    types = [e["type"] for e in read_events(result.trial_dir / "events.jsonl")
             if e["type"] != "hardware_sample"]
    assert types[0] == "run_start" and types[-2:] == ["error", "run_end"]


def test_exception_inside_update_params_is_reported_with_its_location(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        def update_params(**kwargs):
            if kwargs["global_step"] == 3:
                raise ValueError("exploded")
            return _base.update_params(**kwargs)
        """)
    (result,) = run(config(tmp_path, sub))
    assert result.status == "failed"
    assert result.error.startswith("ValueError at submission.py:")
    assert "exploded" in result.error
    assert int(evals(result)[0]["global_step"]) == 1  # the eval at step 1 survives
    assert not verify_chain(result.trial_dir / "events.jsonl")


def test_nan_loss_fails_the_trial_with_infinite_time(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        import torch
        def update_params(**kwargs):
            out = _base.update_params(**kwargs)
            if kwargs["global_step"] == 2:
                with torch.no_grad():
                    for p in out[1].parameters():
                        p.fill_(float("nan"))
            return out
        """)
    (result,) = run(config(tmp_path, sub))
    assert result.status == "failed" and math.isinf(result.time_to_target)
    assert "non-finite eval loss" in result.error


def test_invalid_search_space_is_one_line(tmp_path):
    space = tmp_path / "space.json"
    space.write_text('{"learning_rate": {"min": 1, "max": 0.1, "scaling": "log"}}')
    with pytest.raises(UserError, match="learning_rate"):
        run(config(tmp_path, BASELINE, ruleset="external", tuning_search_space=space))
    assert not (tmp_path / "exp").exists()


def test_unknown_workload_suggests_the_right_name(tmp_path):
    with pytest.raises(UserError, match="Did you mean 'digits'"):
        run(config(tmp_path, BASELINE, workload="digit"))


def test_existing_experiment_dir_is_refused_without_resume_or_overwrite(tmp_path):
    run(config(tmp_path, BASELINE, max_global_steps=2))
    with pytest.raises(UserError, match="already exists; pass --resume"):
        run(config(tmp_path, BASELINE, max_global_steps=2))
    (again,) = run(config(tmp_path, BASELINE, max_global_steps=2, overwrite=True))
    assert again.status == "completed"


def test_missing_mnist_data_says_how_to_get_it(tmp_path):
    with pytest.raises(UserError, match="mnist"):
        run(config(tmp_path, BASELINE, workload="mnist", data_dir=tmp_path / "data"))
    assert not (tmp_path / "exp").exists()


def test_jax_run_reaches_the_target(tmp_path):
    sub = ROOT / "submissions" / "nadamw_self_tuning" / "submission_jax.py"
    (result,) = run(config(tmp_path, sub, framework="jax", max_global_steps=None,
                           save_checkpoints=True))
    assert result.reason == "targets_reached"
    assert (result.trial_dir / f"checkpoint_{result.global_step}").exists()


def test_asynchronously_dispatched_work_is_charged_to_the_submission_not_the_eval(tmp_path):
    """JAX dispatches asynchronously (on the CPU too): update_params returns before the device
    has finished. The runner waits for the device before reading the clock, so that work is
    submission time; without the wait the eval that first reads the params would pay for it."""
    import jax
    import jax.numpy as jnp

    def slow(x):  # a second or more of matrix products on these cores
        return jax.lax.fori_loop(0, 60, lambda _, y: jnp.tanh(y @ y), x)

    slow = jax.jit(slow)
    x = jnp.full((800, 800), 1e-3)
    slow(x).block_until_ready()  # compiled
    start = time.perf_counter()
    pending = slow(x)
    dispatched = time.perf_counter() - start
    pending.block_until_ready()
    duration = time.perf_counter() - start
    assert dispatched < duration / 4, "this backend does not dispatch asynchronously"

    jax_baseline = ROOT / "submissions" / "nadamw_self_tuning" / "submission_jax.py"
    sub = write_submission(tmp_path / "sub", """
        import jax
        import jax.numpy as jnp

        @jax.jit
        def _after_slow_work(params):
            y = jax.lax.fori_loop(0, 60, lambda _, y: jnp.tanh(y @ y),
                                  jnp.full((800, 800), 1e-3))
            return jax.tree.map(lambda p: p + 0.0 * y[0, 0], params)

        _after_slow_work(jnp.zeros(()))  # compiled at import, outside the timed loop

        def update_params(**kwargs):
            optimizer_state, params, model_state = _base.update_params(**kwargs)
            return optimizer_state, _after_slow_work(params), model_state
        """)
    sub.write_text(sub.read_text().replace(str(BASELINE), str(jax_baseline)))
    (result,) = run(config(tmp_path, sub, framework="jax", max_global_steps=1))
    (last,) = evals(result)[-1:]
    assert result.accumulated_submission_time >= 0.8 * duration
    # Without the wait the eval pays for what is left of the work: at least ``duration``.
    assert float(last["accumulated_eval_time"]) < 0.9 * duration


def test_a_v05_submission_importing_algorithmic_efficiency_runs_unmodified(tmp_path):
    sub = tmp_path / "v05" / "submission.py"
    sub.parent.mkdir()
    sub.write_text(textwrap.dedent("""\
        import torch
        from algorithmic_efficiency import spec
        from algorithmic_efficiency.pytorch_utils import pytorch_setup

        USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

        def get_batch_size(workload_name):
            return 64

        def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
            return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=0.1)}

        def update_params(workload, current_param_container, current_params_types,
                          model_state, hyperparameters, batch, loss_type, optimizer_state,
                          eval_results, global_step, rng):
            assert loss_type is spec.LossType.SOFTMAX_CROSS_ENTROPY
            current_param_container.train()
            optimizer_state["optimizer"].zero_grad()
            logits, _ = workload.model_fn(current_param_container, batch, model_state,
                                          spec.ForwardPassMode.TRAIN, rng, False)
            loss = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
            (loss["summed"] / loss["n_valid_examples"]).backward()
            optimizer_state["optimizer"].step()
            return optimizer_state, current_param_container, model_state

        def data_selection(workload, input_queue, optimizer_state, current_param_container,
                           model_state, hyperparameters, global_step, rng):
            return next(input_queue)
        """))
    (result,) = run(config(tmp_path, sub, max_global_steps=30, save_checkpoints=True))
    assert result.status == "completed", result.error
    rows = evals(result)
    assert float(rows[-1]["train/loss"]) < float(rows[0]["train/loss"])


def test_exception_in_init_optimizer_state_fails_the_trial_not_the_run(tmp_path):
    sub = write_submission(tmp_path / "sub", """
        def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
            raise KeyError("no such optimizer")
        """)
    (result,) = run(config(tmp_path, sub))
    assert result.status == "failed" and result.global_step == 0
    assert result.error.startswith("KeyError at submission.py:")
    types = [e["type"] for e in read_events(result.trial_dir / "events.jsonl")]
    assert types == ["run_start", "error", "run_end"]
