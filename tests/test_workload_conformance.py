"""The conformance suite: every implemented registry row, in JAX and PyTorch, against AlgoPerf's
Workload API.

The cases are ``registry.implemented()`` x (jax, pytorch), variants included, and no test here
names a workload: a row added to the registry with code in both frameworks is covered by every
test below without any change to this file. What is pinned for each (row, framework):

- the class implements every abstract member of ``spec.Workload`` and its properties have the
  types AlgoPerf declares and the registry row's values; ``has_reached_*`` follow the row's
  direction (strictly, as AlgoPerf's runner);
- the parameter count is the row's ``expected_param_count(framework)``;
- parameter (and model state) names and shapes are AlgoPerf's own, recorded by running
  AlgoPerf's code into ``tests/data/algoperf_param_names.json``; rows AlgoPerf does not have
  (``digits``) are checked for JAX-PyTorch agreement instead, under an id saying so;
- ``param_shapes`` and ``model_params_types`` mirror the params;
- ``model_fn`` in TRAIN and EVAL on a real batch of the workload's own input queue;
- ``loss_fn``'s dict, masking and label smoothing;
- ``eval_model``'s keys (AlgoPerf's log names), finiteness and repeatability;
- eval batches padded with 0/1 weights as AlgoPerf's ``shard_and_maybe_pad_np``;
- a checkpoint written and read with ``algoperf.checkpoints`` as the runner does gives a model
  with identical EVAL outputs.

Cost: each model is initialised once per framework per session (``Zoo``), with the
workload's ``reduced_settings`` (smaller inputs, same parameters; ``common.registered``) where
it has them -- the API, count and name tests use the workload as a run builds it --, every
dataset's synthetic prepared data is written once (by its
``algoperf.datasets.<dataset>.write_synthetic``, small sizes where the writer takes them),
batches are small and evals run at a small batch.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from algoperf import checkpoints, random_utils, spec
from algoperf.workloads import registry
from algoperf.workloads.common.param_count import count_parameters
from algoperf.workloads.common.registered import import_reduced

FRAMEWORKS = registry.FRAMEWORKS
TRAIN = spec.ForwardPassMode.TRAIN
EVAL = spec.ForwardPassMode.EVAL
BATCH = 8  # training batch of the model_fn / loss_fn / checkpoint tests
EVAL_BATCHES = 4  # eval_model runs at a batch giving about this many batches per split,
EVAL_BATCH = 16  # but at least this one (and at most eval_batch_size): ResNets are slow here
# Synthetic split sizes for writers that take them: several eval batches, little compute.
SYNTHETIC_SIZES = {"num_train": 80, "num_test": 24}
ALGOPERF_NAMES = json.loads(
    (Path(__file__).parent / "data" / "algoperf_param_names.json").read_text())

CASES = [pytest.param(name, framework, id=f"{name}-{framework}")
         for name in registry.implemented() for framework in FRAMEWORKS]


def _name_cases() -> list:
    """AlgoPerf's rows per framework; rows AlgoPerf lacks once, compared across frameworks."""
    cases = []
    for name in registry.implemented():
        if name in ALGOPERF_NAMES:
            cases += [pytest.param(name, framework, id=f"{name}-{framework}")
                      for framework in FRAMEWORKS]
        else:
            cases.append(pytest.param(name, None, id=f"{name}-not_in_algoperf-jax_vs_pytorch"))
    return cases


NAME_CASES = _name_cases()


# Shared state: synthetic data and one initialised model per (row, framework).


def keys(seed: int) -> np.ndarray:
    """The runner's (data, optimizer init, model init, update) keys of a trial seed, made by
    the numpy threefry backend (what a PyTorch run hands to workloads; JAX ones accept it)."""
    previous = random_utils.get_framework()
    random_utils.set_framework("pytorch")
    try:
        return random_utils.split(random_utils.PRNGKey(seed), 4)
    finally:
        random_utils.set_framework(previous)


@dataclasses.dataclass
class Model:
    """A workload with its initial params and state and one training batch of its own queue."""

    info: registry.WorkloadInfo
    framework: str
    workload: spec.Workload
    params: Any  # shared: tests that change a PyTorch module work on a copy (``fresh``)
    model_state: Any
    data_dir: str | None
    batch: dict[str, Any]

    def fresh(self) -> tuple[Any, Any]:
        """Params and state a test may change without touching the shared ones."""
        if self.framework == "pytorch":
            return copy.deepcopy(self.params), copy.deepcopy(self.model_state)
        return self.params, self.model_state  # JAX arrays are immutable


class Zoo:
    """Synthetic data per dataset and models per (row, framework), each made once."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._data_dirs: dict[str, str | None] = {}
        self._models: dict[tuple[str, str], Model] = {}

    def data_dir(self, dataset: str) -> str | None:
        """The data dir holding ``dataset``'s synthetic prepared data; None for a dataset with
        no module in ``algoperf.datasets`` (bundled data such as digits')."""
        if dataset not in self._data_dirs:
            try:
                module = importlib.import_module(f"algoperf.datasets.{dataset}")
            except ModuleNotFoundError:
                self._data_dirs[dataset] = None
            else:
                write = getattr(module, "write_synthetic", None)
                if write is None:
                    pytest.fail(f"algoperf.datasets.{dataset} has no write_synthetic(data_dir): "
                                "the conformance suite needs synthetic prepared data")
                accepted = inspect.signature(write).parameters
                write(self._root, **{k: v for k, v in SYNTHETIC_SIZES.items() if k in accepted})
                self._data_dirs[dataset] = str(self._root)
        return self._data_dirs[dataset]

    def model(self, name: str, framework: str) -> Model:
        if (name, framework) not in self._models:
            info = registry.get_workload(name)
            workload = import_reduced(name, framework)
            data_rng, _, model_rng, _ = keys(0)
            params, model_state = workload.init_model_fn(model_rng)
            data_dir = self.data_dir(info.dataset)
            batch = next(workload._build_input_queue(data_rng, "train", data_dir, BATCH))
            self._models[name, framework] = Model(info, framework, workload, params,
                                                  model_state, data_dir, batch)
        return self._models[name, framework]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> Zoo:
    return Zoo(tmp_path_factory.mktemp("conformance_data"))


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These models are small or the batches are: one thread is faster than two fighting
    other jobs for the two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Framework-neutral helpers.


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def like(reference: Any, array: np.ndarray) -> Any:
    """``array`` as a tensor of ``reference``'s framework (and device)."""
    if isinstance(reference, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(array)).to(reference.device)
    return jnp.asarray(array)


def rows(x: Any, index: np.ndarray) -> Any:
    """The rows ``index`` of a JAX array or a torch tensor (of each, for a tuple)."""
    if isinstance(x, tuple):
        return tuple(rows(part, index) for part in x)
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(index, device=x.device)]
    return x[jnp.asarray(index)]


def unwrap(model: Any) -> Any:
    """The module inside DistributedDataParallel (or the module itself)."""
    return getattr(model, "module", model)


def jax_paths(tree: Any) -> dict[str, Any]:
    """``{'A/b/c': leaf}`` over a nested-dict pytree."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in leaves}


def param_tensors(model: Model) -> dict[str, list[int]]:
    """``{name: shape}`` of the trainable parameters: '/'-joined paths in JAX, dotted
    ``named_parameters()`` names in PyTorch."""
    if model.framework == "jax":
        return {path: list(leaf.shape) for path, leaf in jax_paths(model.params).items()}
    return {name: list(p.shape) for name, p in unwrap(model.params).named_parameters()}


def state_tensors(model: Model) -> dict[str, list[int]]:
    """``{name: shape}`` of the model state: the JAX state's ``batch_stats`` (what AlgoPerf's
    file records), the PyTorch module's buffers."""
    if model.framework == "jax":
        state = model.model_state
        stats = state.get("batch_stats", {}) if isinstance(state, dict) else {}
        return {path: list(leaf.shape) for path, leaf in jax_paths(stats).items()}
    return {name: list(b.shape) for name, b in unwrap(model.params).named_buffers()}


def output_width(model: Model) -> int:
    """The number of model outputs: the size of the output layer's bias
    (``is_output_params``), or, for an output layer that is the tied embedding table
    (vocab, width) and has no bias (finewebedu_lm), the table's rows."""
    workload = model.workload
    if model.framework == "jax":
        marked = {path: leaf for path, leaf in jax_paths(model.params).items()
                  if workload.is_output_params(path.split("/")[0])}
    else:
        marked = {name: p for name, p in unwrap(model.params).named_parameters()
                  if workload.is_output_params(name)}
    biases = [leaf for path, leaf in marked.items() if path.endswith("bias")]
    if not biases and len(marked) == 1 and "embed" in next(iter(marked)):
        return int(next(iter(marked.values())).shape[0])
    assert len(biases) == 1, "is_output_params should mark exactly one output-layer bias"
    return int(biases[0].shape[-1])


def num_rows(model: Model) -> int:
    """Rows of the training batch's outputs: ``BATCH``, or for a batch of graphs its graph
    slots (its shards' padding graphs included)."""
    return int(logits_of(model.batch["targets"]).shape[0])


def logits_of(outputs: Any) -> Any:
    """The array of model outputs (or labels): itself, or the first of the ``(values,
    paddings)`` pair of AlgoPerf's speech workloads (CTC logits, target ids)."""
    return outputs[0] if isinstance(outputs, tuple) else outputs


def check_outputs(model: Model, outputs: Any) -> None:
    """``model_fn``'s outputs are finite and of the shape the labels imply; a speech model's
    ``(logits, logit_paddings)`` has logits (rows, frames, classes), paddings (rows, frames)."""
    if isinstance(outputs, tuple):
        logits, paddings = outputs
        assert tuple(logits.shape) == (num_rows(model), logits.shape[1], output_width(model))
        assert tuple(paddings.shape) == tuple(logits.shape[:2])
    else:
        assert tuple(outputs.shape) == output_shape(model)
    assert np.all(np.isfinite(to_numpy(logits_of(outputs))))


def valid_count(model: Model, mask: np.ndarray) -> float:
    """What ``loss_fn`` must report as ``n_valid_examples`` for ``mask``: its sum, or for a
    CTC loss the target tokens of the unmasked utterances (AlgoPerf's per-token mean)."""
    if model.workload.loss_type == spec.LossType.CTC_LOSS:
        target_paddings = to_numpy(model.batch["targets"][1])
        return float(((1 - target_paddings) * (mask > 0)[:, None]).sum())
    return float(mask.sum())


def output_shape(model: Model) -> tuple[int, ...]:
    """The model's output shape on the training batch: (rows, classes) for integer labels,
    the targets' own shape for real-valued ones (multi-task labels, images)."""
    targets = to_numpy(model.batch["targets"])
    if np.issubdtype(targets.dtype, np.floating):
        return tuple(targets.shape)
    return (num_rows(model), output_width(model))


def eval_splits(workload: spec.Workload) -> Iterator[tuple[str, str]]:
    """(split, the property holding its number of examples) of every split evaluated."""
    yield "eval_train", "num_eval_train_examples"
    yield "validation", "num_validation_examples"
    if workload.num_test_examples is not None:
        yield "test", "num_test_examples"


def torch_buffers(params: Any) -> dict[str, np.ndarray]:
    return {name: to_numpy(b).copy() for name, b in unwrap(params).named_buffers()}


def assert_trees_equal(a: Any, b: Any) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(to_numpy(x), to_numpy(y))


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


# 1. The API: abstract members, property types and values, target comparisons.


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_workload_implements_every_abstract_member_of_spec_workload(name, framework):
    info = registry.get_workload(name)
    workload = registry.import_workload(name, framework)
    cls = type(workload)
    assert cls.__name__ == info.class_name
    assert isinstance(workload, spec.Workload)
    assert not inspect.isabstract(cls) and not cls.__abstractmethods__
    for member in spec.Workload.__abstractmethods__:
        assert getattr(cls, member) is not getattr(spec.Workload, member), member


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_properties_have_algoperfs_types_and_the_registry_rows_values(name, framework):
    info = registry.get_workload(name)
    workload = registry.import_workload(name, framework)
    assert isinstance(workload.target_metric_name, str)
    assert workload.target_metric_name == info.target_metric_name
    for size in ("num_train_examples", "num_eval_train_examples", "num_validation_examples"):
        value = getattr(workload, size)
        assert isinstance(value, int) and not isinstance(value, bool) and value > 0, size
    num_test = workload.num_test_examples
    assert num_test is None or (isinstance(num_test, int) and not isinstance(num_test, bool))
    assert isinstance(workload.eval_batch_size, int) and workload.eval_batch_size > 0
    assert isinstance(workload.loss_type, spec.LossType)
    for constant in ("max_allowed_runtime_sec", "eval_period_time_sec", "step_hint"):
        value = getattr(workload, constant)
        assert is_number(value) and value == getattr(info, constant), constant
    assert isinstance(workload.step_hint, int)
    assert is_number(workload.validation_target_value)
    assert workload.validation_target_value == info.validation_target_value
    assert workload.test_target_value == info.test_target_value
    for constant in ("train_mean", "train_stddev"):  # Any; AlgoPerf's may raise
        try:
            getattr(workload, constant)
        except NotImplementedError:
            pass


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_has_reached_targets_follow_the_registry_rows_direction_strictly(name, framework):
    info = registry.get_workload(name)
    workload = registry.import_workload(name, framework)
    metric = info.target_metric_name
    better = 1.0 if info.direction == registry.MAXIMIZE else -1.0
    checks = [("validation", info.validation_target_value,
               workload.has_reached_validation_target)]
    if info.test_target_value is not None:
        checks.append(("test", info.test_target_value, workload.has_reached_test_target))
    for split, target, reached in checks:
        step = max(abs(target) * 1e-3, 1e-6)

        def result(value):
            return {f"validation/{metric}": value, f"test/{metric}": value}

        assert reached(result(target + better * step)) is True, split
        assert reached(result(target - better * step)) is False, split
        assert reached(result(target)) is False, split  # strict, as AlgoPerf's runner


# 2. Parameter count.


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_param_count_is_the_registry_rows(name, framework):
    """Counted shape-only (``common.param_count``), so the largest models cost nothing."""
    workload = registry.import_workload(name, framework)
    _, _, model_rng, _ = keys(0)
    count = count_parameters(workload, framework, model_rng)
    assert count == registry.get_workload(name).expected_param_count(framework)


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_shape_only_count_is_the_initialised_models(name, framework, zoo):
    model = zoo.model(name, framework)
    if framework == "jax":
        count = sum(leaf.size for leaf in jax.tree.leaves(model.params))
    else:
        count = sum(p.numel() for _, p in unwrap(model.params).named_parameters())
    _, _, model_rng, _ = keys(0)
    assert count == count_parameters(registry.import_workload(name, framework), framework,
                                     model_rng)


# 3. Parameter and model-state names.


@pytest.mark.parametrize(("name", "framework"), NAME_CASES)
def test_param_names_and_shapes_are_algoperfs(name, framework, zoo):
    if framework is None:  # not an AlgoPerf workload: JAX and PyTorch must at least agree
        jax_params, torch_params = (param_tensors(zoo.model(name, fw)) for fw in FRAMEWORKS)
        assert len(jax_params) == len(torch_params)
        assert sum(map(math.prod, jax_params.values())) == \
            sum(map(math.prod, torch_params.values()))
        return
    assert param_tensors(zoo.model(name, framework)) == ALGOPERF_NAMES[name][framework]


@pytest.mark.parametrize(("name", "framework"), NAME_CASES)
def test_model_state_names_and_shapes_are_algoperfs(name, framework, zoo):
    """JAX batch statistics and PyTorch buffers, as recorded from AlgoPerf (none recorded:
    the model has none)."""
    if framework is None:  # not an AlgoPerf workload: both hold the same amount of state
        jax_state = zoo.model(name, "jax").model_state
        model = unwrap(zoo.model(name, "pytorch").params)
        torch_size = sum(b.numel() for b in model.buffers() if b.is_floating_point())
        assert sum(leaf.size for leaf in jax.tree.leaves(jax_state)) == torch_size
        return
    key = "jax_batch_stats" if framework == "jax" else "pytorch_buffers"
    assert state_tensors(zoo.model(name, framework)) == ALGOPERF_NAMES[name].get(key, {})


# 4. param_shapes and model_params_types.


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_param_shapes_and_types_mirror_the_params(name, framework, zoo):
    model = zoo.model(name, framework)
    shapes, types = model.workload.param_shapes, model.workload.model_params_types
    if framework == "jax":
        structure = jax.tree.structure(model.params)
        assert jax.tree.structure(shapes) == structure
        assert jax.tree.structure(types) == structure
        shape_leaves, type_leaves = jax.tree.leaves(shapes), jax.tree.leaves(types)
        expected = [tuple(leaf.shape) for leaf in jax.tree.leaves(model.params)]
    else:
        named = dict(unwrap(model.params).named_parameters())
        assert set(shapes) == set(named) and len(shapes) == len(named)
        assert set(types) == set(named) and len(types) == len(named)
        shape_leaves = [shapes[n] for n in named]
        type_leaves = [types[n] for n in named]
        expected = [tuple(p.shape) for p in named.values()]
    assert all(isinstance(s, spec.ShapeTuple) for s in shape_leaves)
    assert [s.shape_tuple for s in shape_leaves] == expected
    assert all(isinstance(t, spec.ParameterType) for t in type_leaves)


# 5. model_fn.


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_model_fn_train_gives_finite_logits_per_example_and_state_of_the_same_structure(
        name, framework, zoo):
    model = zoo.model(name, framework)
    params, state = model.fresh()
    logits, new_state = model.workload.model_fn(params, model.batch, state, TRAIN, keys(0)[3],
                                                update_batch_norm=True)
    check_outputs(model, logits)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    if framework == "pytorch":
        assert logits_of(logits).requires_grad and unwrap(params).training


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_model_fn_eval_leaves_the_state_unchanged_and_runs_without_grad(name, framework, zoo):
    model = zoo.model(name, framework)
    params, state = model.fresh()
    buffers = torch_buffers(params) if framework == "pytorch" else None
    grad_enabled = []
    if framework == "pytorch":
        hook = unwrap(params).register_forward_pre_hook(
            lambda *_: grad_enabled.append(torch.is_grad_enabled()))
    try:
        logits, new_state = model.workload.model_fn(params, model.batch, state, EVAL,
                                                    keys(0)[3], update_batch_norm=False)
    finally:
        if framework == "pytorch":
            hook.remove()
    check_outputs(model, logits)
    assert_trees_equal(new_state, state)
    if framework == "pytorch":
        assert grad_enabled == [False] and not logits_of(logits).requires_grad
        assert not any(m.training for m in unwrap(params).modules())
        after = torch_buffers(params)
        assert after.keys() == buffers.keys()
        for buffer in buffers:
            np.testing.assert_array_equal(after[buffer], buffers[buffer], err_msg=buffer)


@pytest.mark.parametrize(("name", "framework"),
                         [case for case in CASES if case.values[1] == "jax"])
def test_model_fn_takes_a_traced_dropout_rate_as_algoperfs_jax_baselines_pass_it(
        name, framework, zoo):
    """AlgoPerf's JAX baselines call ``model_fn`` inside their jitted step with
    ``hyperparameters.dropout_rate`` as an argument of that step: a traced value."""
    model = zoo.model(name, framework)
    params, state = model.fresh()

    @jax.jit
    def train_logits(params, state, rng, dropout_rate):
        return model.workload.model_fn(params, model.batch, state, TRAIN, rng,
                                       update_batch_norm=True, dropout_rate=dropout_rate)[0]

    check_outputs(model, train_logits(params, state, jnp.asarray(keys(0)[3]), 0.1))


# 6. loss_fn.


def loss_inputs(model: Model) -> tuple[Any, Any, tuple[int, ...]]:
    """The batch's labels, random logits of the model's output shape (spread out, so losses
    differ across examples and classes) and the shape of a mask (the batch's weights). For
    CTC labels ``(ids, paddings)`` the logits are ``(logits, paddings)`` over twice as many
    frames as label positions, so every target has an alignment."""
    labels = model.batch["targets"]
    random_state = np.random.RandomState(0)
    if isinstance(labels, tuple):
        shape = (num_rows(model), 2 * labels[0].shape[1], output_width(model))
        logits = (like(labels[0], 3.0 * random_state.normal(size=shape).astype(np.float32)),
                  like(labels[0], np.zeros(shape[:2], np.float32)))
        weights = model.batch.get("weights")
        return labels, logits, tuple(weights.shape)
    shape = output_shape(model)
    logits = like(labels, 3.0 * random_state.normal(size=shape).astype(np.float32))
    weights = model.batch.get("weights")
    mask_shape = tuple(weights.shape) if weights is not None else (num_rows(model),)
    return labels, logits, mask_shape


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_loss_fn_returns_summed_n_valid_and_per_example(name, framework, zoo):
    model = zoo.model(name, framework)
    labels, logits, mask_shape = loss_inputs(model)
    out = model.workload.loss_fn(labels, logits)
    assert set(out) == {"summed", "n_valid_examples", "per_example"}
    per_example = to_numpy(out["per_example"])
    assert per_example.shape == mask_shape and np.all(np.isfinite(per_example))
    assert float(out["summed"]) == pytest.approx(float(per_example.sum()), rel=1e-6)
    assert float(out["n_valid_examples"]) == valid_count(model, np.ones(mask_shape, np.float32))


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_loss_fn_mask_drops_masked_examples_and_counts_the_rest(name, framework, zoo):
    model = zoo.model(name, framework)
    labels, logits, mask_shape = loss_inputs(model)
    keep = np.zeros(num_rows(model), bool)
    keep[[0, 2, 3, 6]] = True
    mask = np.broadcast_to(keep.reshape(-1, *[1] * (len(mask_shape) - 1)),
                           mask_shape).astype(np.float32)
    out = model.workload.loss_fn(labels, logits, like(logits_of(logits), mask))
    per_example = to_numpy(out["per_example"])
    assert per_example.shape == mask_shape
    assert np.all(per_example[~keep] == 0)
    assert float(out["n_valid_examples"]) == valid_count(model, mask)
    assert float(out["summed"]) == pytest.approx(float(per_example.sum()), rel=1e-6)
    index = np.flatnonzero(keep)
    unmasked = model.workload.loss_fn(rows(labels, index), rows(logits, index))
    assert float(out["summed"]) == pytest.approx(float(unmasked["summed"]), rel=1e-5)
    np.testing.assert_allclose(per_example[keep], to_numpy(unmasked["per_example"]), rtol=1e-5)


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_loss_fn_label_smoothing_changes_softmax_ce_and_zero_is_the_default(
        name, framework, zoo):
    model = zoo.model(name, framework)
    labels, logits, _ = loss_inputs(model)
    default = model.workload.loss_fn(labels, logits)
    zero = model.workload.loss_fn(labels, logits, None, 0.0)
    for key in ("summed", "n_valid_examples", "per_example"):
        np.testing.assert_array_equal(to_numpy(zero[key]), to_numpy(default[key]), err_msg=key)
    if model.workload.loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY:
        smoothed = model.workload.loss_fn(labels, logits, None, 0.1)
        # Per example: over many rows of random logits (charlm's positions) the changes of
        # the sum can cancel.
        assert not np.allclose(to_numpy(smoothed["per_example"]),
                               to_numpy(default["per_example"]), rtol=1e-3)


# 7. eval_model.


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_eval_model_reports_algoperfs_metric_names_finite_and_repeatable(name, framework, zoo):
    """On a workload that has not read its data yet (as after a restart), twice: the cached
    eval iterators must restart at each split's beginning."""
    model = zoo.model(name, framework)
    largest = max(getattr(model.workload, size) for _, size in eval_splits(model.workload))
    batch_size = min(model.workload.eval_batch_size,
                     max(EVAL_BATCH, math.ceil(largest / EVAL_BATCHES)))
    workload = import_reduced(name, framework)
    params, state = model.fresh()
    results = [workload.eval_model(batch_size, params, state, keys(0)[3], model.data_dir, None,
                                   0) for _ in range(2)]
    splits = ["train", "validation"]
    expected = {"validation/num_examples"}
    if workload.num_test_examples is not None:
        splits.append("test")
        expected.add("test/num_examples")
    expected |= {f"{split}/{metric}" for split in splits for metric in model.info.metrics}
    assert set(results[0]) == expected
    for key, value in results[0].items():
        if key.endswith("/num_examples"):
            assert isinstance(value, int) and not isinstance(value, bool), key
        else:
            assert isinstance(value, float) and math.isfinite(value), key
    assert results[0]["validation/num_examples"] == workload.num_validation_examples
    if workload.num_test_examples is not None:
        assert results[0]["test/num_examples"] == workload.num_test_examples
    assert results[1] == results[0]


# 8. Padded eval batches.


def ragged_batch_size(num_examples: int) -> int:
    """A batch size giving a few batches, the last one padded (when the split allows it)."""
    for num_batches in range(3, 12):
        batch_size = math.ceil(num_examples / num_batches)
        if num_examples % batch_size:
            return batch_size
    return max(1, num_examples // 2)


def check_padded_graph_batches(batches: list[dict[str, Any]], where: str) -> None:
    """Dynamically batched graphs (jraph's ``GraphsTuple``; the graph tests of the workload
    pin which graphs go where): every batch padded to one size, one row of targets and
    weights per graph slot, 0/1 weights, and every node and edge belonging to a graph."""
    shapes = {key: tuple(value.shape) for key, value in jax_paths(
        {k: v for k, v in batches[0]["inputs"]._asdict().items() if k != "globals"}).items()}
    for batch in batches:
        graph = batch["inputs"]
        assert {key: tuple(value.shape) for key, value in jax_paths(
            {k: v for k, v in graph._asdict().items() if k != "globals"}).items()} == shapes
        n_node, n_edge = to_numpy(graph.n_node), to_numpy(graph.n_edge)
        assert to_numpy(batch["targets"]).shape[0] == len(n_node), where
        weights = to_numpy(batch["weights"]).astype(np.float32)
        assert weights.shape[0] == len(n_node) and set(np.unique(weights)) <= {0.0, 1.0}, where
        assert n_node.sum() == len(graph.nodes) and n_edge.sum() == len(graph.edges), where


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_eval_batches_are_padded_with_weights_one_then_zero(name, framework, zoo):
    model = zoo.model(name, framework)
    workload = model.workload
    for split, size in eval_splits(workload):
        num_examples = getattr(workload, size)  # the model's training queue read the data
        for batch_size in sorted({workload.eval_batch_size, ragged_batch_size(num_examples)}):
            queue = workload._build_input_queue(keys(0)[0], split, model.data_dir, batch_size,
                                                repeat_final_dataset=True)
            num_batches = math.ceil(num_examples / batch_size)
            batches = [next(queue) for _ in range(num_batches)]
            if hasattr(batches[0]["inputs"], "n_node"):
                check_padded_graph_batches(batches, f"{split} at batch size {batch_size}")
                continue
            # A sequence model may give one row per position (charlm): its targets and
            # weights hold a whole number of rows per example, each example's rows weighted
            # alike.
            rows = len(batches[0]["weights"]) // batch_size
            weights = []
            for batch in batches:
                for key, value in batch.items():
                    for part in value if isinstance(value, tuple) else (value,):
                        assert part.shape[0] in (batch_size, rows * batch_size), (split, key)
                weights.append(to_numpy(batch["weights"]))
            expected = np.repeat(np.arange(num_batches * batch_size) < num_examples,
                                 rows).astype(np.float32)
            np.testing.assert_array_equal(np.concatenate(weights), expected,
                                          err_msg=f"{split} at batch size {batch_size}")


# 9. Checkpoints.


def perturbed(model: Model) -> tuple[Any, Any, Any, Any]:
    """Params after one SGD-with-momentum step on random gradients, the optimizer state in the
    framework's AlgoPerf convention, changed model state, and the optimizer builder."""
    noise = np.random.RandomState(1)
    if model.framework == "jax":
        optimizer = optax.sgd(0.1, momentum=0.9)

        @jax.jit  # one program: op-by-op, every parameter shape would compile its own ops
        def step(params, grads):
            updates, opt_state = optimizer.update(grads, optimizer.init(params), params)
            return optax.apply_updates(params, updates), opt_state

        grads = jax.tree.map(lambda p: noise.normal(size=p.shape).astype(p.dtype), model.params)
        params, opt_state = step(model.params, grads)
        state = jax.tree.map(
            lambda x: np.asarray(x) * 2 + 1 if jnp.issubdtype(x.dtype, jnp.floating)
            else np.asarray(x) + 1, model.model_state)
        return params, (opt_state, optimizer.update), state, optimizer
    params, state = model.fresh()
    optimizer = torch.optim.SGD(params.parameters(), lr=0.1, momentum=0.9)
    for p in params.parameters():
        p.grad = torch.from_numpy(noise.normal(size=tuple(p.shape)).astype(np.float32))
    optimizer.step()
    with torch.no_grad():
        for buffer in unwrap(params).buffers():
            if buffer.is_floating_point():
                buffer.mul_(2).add_(1)
            else:
                buffer.add_(1)
    return params, {"optimizer": optimizer}, state, None


def training_state(params, optimizer_state, model_state, step: int) -> checkpoints.TrainingState:
    return checkpoints.TrainingState(
        params, optimizer_state, model_state,
        train_state={"accumulated_submission_time": float(step), "last_eval_time": 0.0},
        eval_results=[(s, {"validation/loss": 1.0 / (s + 1)}) for s in range(step)],
        global_step=step, preemption_count=0)


@pytest.mark.parametrize(("name", "framework"), CASES)
def test_checkpoint_restores_params_optimizer_and_model_state(name, framework, zoo, tmp_path):
    model = zoo.model(name, framework)

    def eval_logits(params, state):
        logits, _ = model.workload.model_fn(params, model.batch, state, EVAL, None, False)
        return to_numpy(logits_of(logits))

    params, optimizer_state, state, optimizer = perturbed(model)
    saved = training_state(params, optimizer_state, state, step=3)
    path = checkpoints.save(tmp_path, framework, saved, keep_intermediate=False)

    # Fresh templates, as the runner builds them before restoring.
    template_params, template_state = model.fresh()
    if framework == "jax":
        template_optimizer = (jax.jit(optimizer.init)(template_params), optimizer.update)
    else:
        template_optimizer = {"optimizer": torch.optim.SGD(template_params.parameters(), lr=0.1,
                                                           momentum=0.9)}
    before = eval_logits(template_params, template_state)
    template = training_state(template_params, template_optimizer, template_state, step=0)
    restored = checkpoints.restore(path, framework, template)

    expected = eval_logits(params, state)
    assert not np.array_equal(before, expected)  # the checkpoint holds a different model
    np.testing.assert_array_equal(eval_logits(restored.params, restored.model_state), expected)
    assert (restored.global_step, restored.eval_results, restored.train_state) == \
        (saved.global_step, saved.eval_results, saved.train_state)
    if framework == "jax":
        assert restored.optimizer_state[1] is optimizer.update
        assert_trees_equal(restored.optimizer_state[0], optimizer_state[0])
        assert_trees_equal(restored.model_state, state)
    else:
        restored_optimizer = restored.optimizer_state["optimizer"].state_dict()
        saved_optimizer = optimizer_state["optimizer"].state_dict()
        assert restored_optimizer["param_groups"] == saved_optimizer["param_groups"]
        assert_trees_equal(restored_optimizer["state"], saved_optimizer["state"])
        assert_trees_equal(torch_buffers(restored.params), torch_buffers(params))
