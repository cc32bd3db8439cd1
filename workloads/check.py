"""`algoperf workloads check`: one workload built and run end to end on synthetic data.

A check builds a registry row's workload (variants included) in one framework, on a small
synthetic dataset that its dataset module's ``write_synthetic`` writes in the real prepared
on-disk format into a temporary folder (digits needs none: its data ships with scikit-learn).
It then compares the model's parameter count with the registry's, runs the reference
submission (the NAdamW baseline in ``submissions/nadamw``, loaded as the runner loads
submissions) for a first training step -- which compiles, in JAX -- and a second, timed one,
calls ``prepare_for_eval`` as the runner does, and evaluates once on every split with the
workload's own ``eval_model``.

The check passes when the parameter count equals the registry's, every training loss is finite
and every metric the registry row lists is present and finite on train, validation and test
(train and validation for a workload without a test split, as finewebedu_lm).

Nothing here imports JAX or PyTorch at module level: a framework is imported when a check of it
runs, so the `algoperf workloads` listing never pays for one.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from algoperf.errors import UserError
from algoperf.workloads import registry

REFERENCE_SUBMISSION = Path(__file__).resolve().parent.parent / "submissions" / "nadamw"
SEED = 0
SPLITS = ("train", "validation", "test")
# Used when the submission has no batch size for the workload or the synthetic training split
# is smaller than the submission's batch (and, for eval, than the workload's eval batch).
SMALL_BATCH_SIZE = 16
SMALL_EVAL_BATCH_SIZE = 16
# Sizes passed to a dataset's ``write_synthetic``, where it takes any. CIFAR-10: 40 training
# and 20 test images, split 36 / 4 / 20 -- 16-image eval batches then pad every eval split
# (train: 3 batches, validation: 1, test: 2) and a ResNet-18 step takes under a second on a
# CPU. MNIST's writer always writes the official 60,000 + 10,000 images, the sizes its reader
# insists on (MLP steps and evals on them are fast).
SYNTHETIC_SIZES: dict[str, dict[str, int]] = {"cifar10": {"num_train": 40, "num_test": 20}}

Progress = Callable[[str], None]


@dataclasses.dataclass
class CheckResult:
    """What one check of one workload in one framework found. ``to_json`` gives its line."""

    workload: str
    framework: str
    expected_param_count: int
    data: str  # where the data came from
    submission: str
    param_count: int | None = None
    batch_size: int | None = None
    batch_size_source: str | None = None
    eval_batch_size: int | None = None
    eval_batch_size_source: str | None = None
    first_step_s: float | None = None  # the first training step, compilation included
    train_step_s: float | None = None  # the second one: data selection, update, device sync
    losses: list[tuple[int, float | None]] = dataclasses.field(default_factory=list)  # (step, loss)
    loss_source: str | None = None
    eval_s: float | None = None
    eval_metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the check (the first seven keys are the stable interface)."""
        return {
            "workload": self.workload,
            "framework": self.framework,
            "param_count": self.param_count,
            "expected_param_count": self.expected_param_count,
            "train_step_s": _rounded(self.train_step_s),
            "eval_metrics": {k: _json_number(v) for k, v in self.eval_metrics.items()},
            "ok": self.ok,
            "first_step_s": _rounded(self.first_step_s),
            "eval_s": _rounded(self.eval_s),
            "loss": _json_number(self.losses[-1][1]) if self.losses else None,
            "loss_source": self.loss_source,
            "batch_size": self.batch_size,
            "batch_size_source": self.batch_size_source,
            "eval_batch_size": self.eval_batch_size,
            "eval_batch_size_source": self.eval_batch_size_source,
            "data": self.data,
            "submission": self.submission,
            "problems": list(self.problems),
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 4)


def _json_number(value: Any) -> Any:
    """Finite numbers as they are; NaN and infinities as None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def checkable(name: str) -> registry.WorkloadInfo:
    """The registry row of ``name``; UserError (UnknownNameError) when it is unknown (with a
    suggestion) or not implemented here (with the implemented rows)."""
    info = registry.get_workload(name)
    if not info.implemented:
        raise registry.UnknownNameError(
            f"workload {name!r} is in the registry but has no implementation here yet; "
            f"implemented: {', '.join(registry.implemented())}")
    return info


# Data.


@dataclasses.dataclass(frozen=True)
class Data:
    """The data directory a check runs on (None: the workload needs none) and its story."""

    data_dir: Path | None
    description: str
    synthetic: bool


def needs_download(dataset: str) -> bool:
    """Whether ``dataset`` is downloaded (it has a manifest), as opposed to bundled (digits)."""
    from algoperf.datasets import manifest

    return dataset in manifest.builtin_names()


def write_data(info: registry.WorkloadInfo, root: Path, progress: Progress) -> Data:
    """Synthetic data for ``info`` in ``root``, written by its dataset module's
    ``write_synthetic`` in the prepared format; nothing for a bundled dataset."""
    if not needs_download(info.dataset):
        return Data(None, f"{info.dataset} (bundled, no download)", synthetic=False)
    try:
        module = importlib.import_module(f"algoperf.datasets.{info.dataset}")
    except ModuleNotFoundError:
        module = None
    writer = getattr(module, "write_synthetic", None)
    if writer is None:
        raise UserError(f"dataset {info.dataset!r} has no synthetic writer yet "
                        f"(algoperf.datasets.{info.dataset}.write_synthetic); "
                        f"{info.name} cannot be checked without its data")
    sizes = SYNTHETIC_SIZES.get(info.dataset, {})
    what = f"synthetic {info.dataset}" + (
        f" ({', '.join(f'{k}={v}' for k, v in sizes.items())})" if sizes else "")
    progress(f"writing {what} in its prepared format")
    start = time.perf_counter()
    directory = Path(writer(root, **sizes))
    progress(f"  wrote {directory.name}/ in {time.perf_counter() - start:.1f} s")
    return Data(root, f"{what} in its prepared format, in a temporary folder", synthetic=True)


# Framework-specific bits, imported when used.


def _count_params(framework: str, params: Any) -> int:
    if framework == "jax":
        import jax

        return sum(int(leaf.size) for leaf in jax.tree.leaves(params))
    return sum(p.numel() for p in params.parameters() if p.requires_grad)


class _Recorder:
    """A metrics logger that keeps what the submission logs (the baselines log the loss)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, Any]]] = []

    def append_scalar_metrics(self, metrics, global_step, preemption_count=None,
                              is_eval=False) -> None:
        del preemption_count, is_eval
        self.rows.append((int(global_step), dict(metrics)))

    def finish(self) -> None:
        pass


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _scalar(value: Any) -> Any:
    """An eval metric as a plain Python number (counts stay ints), else as it is."""
    if isinstance(value, bool | int | float | str):
        return value
    number = _float(value)
    return value if number is None else number


def _workload_loss(workload, params, model_state, batch, rng) -> float:
    """The workload's mean training loss of ``batch`` (when the submission logs none)."""
    from algoperf import spec

    logits, _ = workload.model_fn(params, batch, model_state, spec.ForwardPassMode.TRAIN, rng,
                                  update_batch_norm=False)
    losses = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
    return float(losses["summed"]) / float(losses["n_valid_examples"])


# The check.


def _hyperparameters(submission_dir: Path):
    """The first point of the submission's search space (None without one: self-tuning)."""
    from algoperf import tuning

    space = submission_dir / "tuning_search_space.json"
    if not space.is_file():
        return None
    return tuning.load_search_space(space).points(1, SEED)[0]


def _batch_size(submission, info: registry.WorkloadInfo, num_train: int) -> tuple[int, str]:
    from algoperf.submission import batch_size

    small = min(SMALL_BATCH_SIZE, num_train)
    try:
        value = batch_size(submission, info.name, info.base)
    except UserError:
        return small, f"small: the submission has no batch size for {info.name}"
    if value > num_train:
        return small, (f"small: the submission's {value} exceeds the {num_train} synthetic "
                       "training examples")
    return value, "the submission's get_batch_size"


def _eval_batch_size(submission, workload, info: registry.WorkloadInfo,
                     data: Data) -> tuple[int, str]:
    value, source = workload.eval_batch_size, "the workload's"
    if submission.get_eval_batch_size is not None:
        value, source = int(submission.get_eval_batch_size(info.name)), "the submission's"
    if data.synthetic:
        largest = max(workload.num_eval_train_examples, workload.num_validation_examples,
                      workload.num_test_examples or 0)
        if value > largest:
            small = max(1, min(SMALL_EVAL_BATCH_SIZE, largest))  # no batch of padding only
            return small, (f"small: {source} {value} exceeds every synthetic split (at most "
                           f"{largest} examples)")
    return value, source


def _eval_splits(workload) -> tuple[str, ...]:
    """The splits ``eval_model`` reports: every split but test where the workload has none
    (finewebedu_lm: ``num_test_examples`` is None, as AlgoPerf's 0)."""
    return SPLITS if workload.num_test_examples else SPLITS[:-1]


def check_workload(name: str, framework: str, data: Data, progress: Progress,
                   debug: bool = False, submission_path: Path = REFERENCE_SUBMISSION,
                   ) -> CheckResult:
    """Checks ``name`` in ``framework`` on ``data``. A failure inside the workload or the
    submission becomes a problem of the result (raised with ``debug``); bad input raises
    UserError."""
    info = checkable(name)
    registry.check_framework(framework)
    from algoperf import frameworks
    from algoperf.submission import load_submission, submission_root

    if not submission_path.exists():
        raise UserError(f"the submission {submission_path} is missing; pass one with "
                        "--submission (the NAdamW baseline is submissions/nadamw in a source "
                        "checkout of algoperf)")
    progress(f"{name} ({framework}): importing {framework} and the submission "
             f"{submission_path.name}")
    frameworks.setup(framework)  # UserError when the framework is not installed
    # With the current directory as its repository root when it holds it, as `algoperf run`.
    submission = load_submission(submission_path, framework, root=submission_root(submission_path))
    result = CheckResult(workload=name, framework=framework,
                         expected_param_count=info.expected_param_count(framework),
                         data=data.description,
                         submission=submission.name)
    stages: list[str] = []  # what _run has started, for the message of a failure
    try:
        _run(info, framework, data, submission, result, progress, stages.append)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken workload is a failed check, not a crash
        if debug:
            raise
        where = traceback.extract_tb(e.__traceback__)[-1]
        result.problems.append(f"{stages[-1]} failed: {type(e).__name__}: {e} "
                               f"(at {Path(where.filename).name}:{where.lineno})")
    return result


def _run(info, framework, data, submission, result: CheckResult, progress: Progress,
         stage: Callable[[str], None]) -> None:
    """The check's stages, filling ``result``; names each stage (``stage``) before it runs."""
    import numpy as np

    from algoperf import frameworks, random_utils

    tag = f"{info.name} ({framework})"
    data_dir = str(data.data_dir) if data.data_dir is not None else None
    stage("building the workload")
    progress(f"{tag}: building the workload and its model")
    workload = registry.import_workload(info.name, framework)
    rng = random_utils.PRNGKey(SEED)
    data_rng, opt_init_rng, model_init_rng, rng = random_utils.split(rng, 4)
    # Loading the training data first: split sizes may follow the prepared data (cifar).
    workload._build_input_queue(data_rng, "train", data_dir=data_dir, global_batch_size=1)
    result.batch_size, result.batch_size_source = _batch_size(
        submission, info, workload.num_train_examples)
    input_queue = workload._build_input_queue(data_rng, "train", data_dir=data_dir,
                                              global_batch_size=result.batch_size)
    params, model_state = workload.init_model_fn(model_init_rng)
    result.param_count = _count_params(framework, params)
    if result.param_count != result.expected_param_count:
        result.problems.append(f"{result.param_count:,} parameters, the registry says "
                               f"{result.expected_param_count:,}")

    stage("initialising the optimizer")
    hyperparameters = _hyperparameters(submission.path.parent)
    optimizer_state = submission.init_optimizer_state(workload, params, model_state,
                                                      hyperparameters, opt_init_rng)
    recorder = _Recorder()
    workload.attach_metrics_logger(recorder)
    sync = frameworks.syncer(framework)
    step_keys = random_utils.step_rngs(np.asarray(rng, dtype=np.uint32), 0, 2)
    update_kwargs = {"train_state": {}} if submission.wants_train_state else {}
    eval_results: list = []
    batch = None
    for step in range(2):
        stage("the first training step" if step == 0 else "the timed training step")
        first = "first training step (warm-up" + (", compiles)" if framework == "jax" else ")")
        progress(f"{tag}: {first if step == 0 else 'timing one training step'}, "
                 f"batch size {result.batch_size}")
        data_select_rng, update_rng, prep_eval_rng, eval_rng = step_keys[step]
        start = time.perf_counter()
        batch = submission.data_selection(workload, input_queue, optimizer_state, params,
                                          model_state, hyperparameters, step, data_select_rng)
        optimizer_state, params, model_state = submission.update_params(
            workload=workload, current_param_container=params,
            current_params_types=workload.model_params_types, model_state=model_state,
            hyperparameters=hyperparameters, batch=batch, loss_type=workload.loss_type,
            optimizer_state=optimizer_state, eval_results=eval_results, global_step=step,
            rng=update_rng, **update_kwargs)
        sync((optimizer_state, params, model_state))
        seconds = time.perf_counter() - start
        if step == 0:
            result.first_step_s = seconds
        else:
            result.train_step_s = seconds
        progress(f"{tag}:   {seconds:.3f} s")
    # The losses the submission logged (the baselines log the first step's); if it logged
    # none, the workload's own loss of the last batch after the last step.
    result.losses = [(step, _float(row["loss"])) for step, row in recorder.rows
                     if "loss" in row]
    result.loss_source = "logged by the submission"
    if not result.losses:
        result.losses = [(1, _workload_loss(workload, params, model_state, batch, update_rng))]
        result.loss_source = "the workload's loss_fn on the last batch, after the step"
    progress(f"{tag}:   training loss " + ", ".join(
        f"{value} (step {step})" for step, value in result.losses))
    bad = [f"{value} at step {step}" for step, value in result.losses
           if value is None or not math.isfinite(value)]
    if bad:
        result.problems.append(f"non-finite training loss ({', '.join(bad)})")

    if submission.prepare_for_eval is not None:
        stage("prepare_for_eval")
        optimizer_state, params, model_state = submission.prepare_for_eval(
            workload=workload, current_param_container=params,
            current_params_types=workload.model_params_types, model_state=model_state,
            hyperparameters=hyperparameters, loss_type=workload.loss_type,
            optimizer_state=optimizer_state, eval_results=eval_results, global_step=2,
            rng=prep_eval_rng)
    del batch
    stage("the evaluation")
    result.eval_batch_size, result.eval_batch_size_source = _eval_batch_size(
        submission, workload, info, data)
    splits = _eval_splits(workload)
    progress(f"{tag}: evaluating on {', '.join(splits)}, eval batch size "
             f"{result.eval_batch_size}")
    start = time.perf_counter()
    metrics = workload.eval_model(result.eval_batch_size, params, model_state, eval_rng,
                                  data_dir, None, 2)
    result.eval_s = time.perf_counter() - start
    result.eval_metrics = {k: _scalar(v) for k, v in metrics.items()}
    progress(f"{tag}:   {result.eval_s:.2f} s")
    for split in splits:
        for metric in info.metrics:
            key = f"{split}/{metric}"
            value = result.eval_metrics.get(key)
            if key not in result.eval_metrics:
                result.problems.append(f"eval_model returned no {key}")
            elif (isinstance(value, bool) or not isinstance(value, int | float)
                  or not math.isfinite(value)):
                result.problems.append(f"{key} is {value!r}")


def check(name: str, frameworks: Iterable[str] = registry.FRAMEWORKS,
          progress: Progress = lambda message: None, debug: bool = False,
          submission_path: Path = REFERENCE_SUBMISSION) -> Iterator[CheckResult]:
    """Checks workload ``name`` in each of ``frameworks``, one result each as it finishes,
    on synthetic data written once into a temporary folder (removed at the end)."""
    info = checkable(name)
    frameworks = [registry.check_framework(f) for f in frameworks]
    with tempfile.TemporaryDirectory(prefix="algoperf-check-") as root:
        data = write_data(info, Path(root), progress)
        for framework in frameworks:
            yield check_workload(name, framework, data, progress, debug, submission_path)
