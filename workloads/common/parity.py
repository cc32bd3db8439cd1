"""The JAX-vs-PyTorch parity harness: one set of weights and batches, the same numbers in both
frameworks, asserted.

AlgoPerf checks its two implementations of a workload with ``tests/modeldiffs`` (one forward
pass, differences printed) and ``tests/test_traindiffs.py`` (rtol 1, last step only). Here the
differences are measured and held to stated tolerances:

- **transfer**: the JAX model is initialised (``init_model_fn``) and its parameters and model
  state (batch-norm statistics) are converted into a PyTorch ``state_dict`` by the workload's
  transfer definition, then loaded into the PyTorch workload's own model (from its
  ``init_model_fn``) with ``load_state_dict(strict=True)``, after a readable check that every
  parameter and buffer is covered -- none left at its PyTorch initialisation, none extra;
- **output parity** (``output_parity``): ``model_fn`` on one batch in EVAL mode and in TRAIN
  mode with dropout off (``dropout_rate=0.0``; ``update_batch_norm=True``, so batch norm uses
  the batch's statistics in both frameworks), comparing logits, the summed and per-example
  losses of each framework's ``loss_fn``, the updated batch-norm statistics, and both
  ``loss_fn``s on the same logits with padding rows masked and label smoothing;
- **training parity** (``training_parity``): plain SGD from the transferred weights on the same
  batches for a few steps (``optax.sgd`` / ``torch.optim.SGD``, no momentum; each framework's
  ``model_fn`` and ``loss_fn``, mean loss = summed / n_valid_examples, ``jax.value_and_grad``
  / ``loss.backward``, batch-norm statistics updated), comparing the loss of every step and the
  final parameters and model state; in float64 for a row the definition's
  ``FLOAT64_TRAINING`` names.

Each returns a ``ParityResult`` (max absolute and relative difference per compared quantity)
and raises ``ParityError`` (an ``AssertionError``) naming the worst tensor or step when any
quantity is out of tolerance.

A workload's transfer definition is the module ``parity`` in its own folder
(``algoperf.workloads.<module>.parity``, from the registry row's ``module``), built from the
converters below::

    def jax_to_pytorch(params, model_state) -> dict[str, np.ndarray]:
        '''The PyTorch state_dict (every parameter and buffer, PyTorch names) of the JAX
        parameters and model state, given as trees of numpy arrays.'''

    TOLERANCES = {"logits": Tolerance(rtol=..., atol=...)}  # optional overrides, with reasons

A row without one fails (``ParityDefinitionError``): parity is required of every workload.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from algoperf import random_utils, spec
from algoperf.workloads import registry


class Tolerance(NamedTuple):
    """``|jax - pytorch| <= atol + rtol * |pytorch|`` elementwise (``np.allclose``'s rule)."""

    rtol: float
    atol: float


# Every tolerance, in one place. Both frameworks compute in float32 (machine epsilon 1.2e-7),
# but not in the same order: XLA's CPU kernels and PyTorch's (oneDNN, MKL) tile and accumulate
# the sums of matrix products and convolutions differently, and compute softmax
# cross-entropy and batch-norm moments with different formulas (flax: E[x^2] - E[x]^2,
# PyTorch: a one-pass Welford update). Each sum of n products then differs by a few eps *
# sqrt(n) relative; a ResNet stacks 20 of them, and batch norm in train mode divides by the
# batch's standard deviation, which amplifies them. 1e-5 relative is ~100 eps: far above what
# the measured models show at init (docs/workloads.md lists the measured differences), far below
# any real difference -- a transposed kernel, a shifted padding, a wrong epsilon or activation
# shows up at 1e-3 or more. Training compounds the rounding over steps (and a learning-rate
# step turns gradient rounding into parameter differences), so the training quantities allow
# ten times more. A workload may override any of these in its definition's TOLERANCES.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    # Output parity, per mode.
    "logits": Tolerance(rtol=1e-5, atol=1e-5),  # EVAL logits
    "train_logits": Tolerance(rtol=1e-5, atol=1e-5),  # TRAIN logits (batch statistics)
    "loss": Tolerance(rtol=1e-5, atol=1e-5),  # loss_fn(...)["summed"]
    "per_example": Tolerance(rtol=1e-5, atol=1e-5),  # loss_fn(...)["per_example"]
    "loss_fn": Tolerance(rtol=1e-5, atol=1e-6),  # both loss_fns on the same (JAX) logits
    "model_state": Tolerance(rtol=1e-5, atol=1e-6),  # float buffers, e.g. batch-norm stats
    # Training parity.
    "train_loss": Tolerance(rtol=1e-4, atol=1e-5),  # the mean loss of every step
    "params": Tolerance(rtol=1e-4, atol=1e-5),  # the parameters after the last step
    "final_model_state": Tolerance(rtol=1e-4, atol=1e-5),  # the model state after it
}

# Quantities compared tensor by tensor of the PyTorch state_dict; a definition may give the
# tensors of one kind their own tolerance ('model_state:running_var', see ``tolerances``).
STATE_DICT_QUANTITIES = ("params", "model_state", "final_model_state")

EVAL = spec.ForwardPassMode.EVAL
TRAIN = spec.ForwardPassMode.TRAIN
LABEL_SMOOTHING = 0.1  # of the same-logits loss_fn check, which also masks padding rows
DROPOUT_OFF = {"dropout_rate": 0.0}  # every model_fn call: train mode compares without dropout


class ParityError(AssertionError):
    """JAX and PyTorch differ beyond tolerance, or the transfer does not fit the model."""


class ParityDefinitionError(LookupError):
    """A workload has no (usable) transfer definition ``workloads/<module>/parity.py``."""


# Converters: a flax layer's parameters to the PyTorch module's state_dict entries.


def dense(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``nn.Dense`` -> ``nn.Linear``: kernel (in, out) -> weight (out, in); bias as is."""
    tensors = {"weight": np.asarray(params["kernel"]).T}
    if "bias" in params:
        tensors["bias"] = np.asarray(params["bias"])
    return tensors


def conv(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``nn.Conv`` -> ``nn.Conv{1,2,3}d``: kernel (*spatial, in, out), e.g. HWIO ->
    weight (out, in, *spatial), e.g. OIHW; bias as is."""
    kernel = np.asarray(params["kernel"])
    spatial = tuple(range(kernel.ndim - 2))
    tensors = {"weight": kernel.transpose(kernel.ndim - 1, kernel.ndim - 2, *spatial)}
    if "bias" in params:
        tensors["bias"] = np.asarray(params["bias"])
    return tensors


def batch_norm(params: Mapping[str, np.ndarray],
               stats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``nn.BatchNorm`` (params scale/bias, batch_stats mean/var) -> ``nn.BatchNorm{1,2,3}d``
    (weight/bias, running_mean/running_var; ``num_batches_tracked`` 0, a counter flax does
    not keep and a fixed-momentum layer never reads)."""
    return {"weight": np.asarray(params["scale"]), "bias": np.asarray(params["bias"]),
            "running_mean": np.asarray(stats["mean"]), "running_var": np.asarray(stats["var"]),
            "num_batches_tracked": np.zeros((), np.int64)}


def layer_norm(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``nn.LayerNorm`` -> ``nn.LayerNorm``: scale/bias -> weight/bias."""
    tensors = {}
    if "scale" in params:
        tensors["weight"] = np.asarray(params["scale"])
    if "bias" in params:
        tensors["bias"] = np.asarray(params["bias"])
    return tensors


def embedding(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``nn.Embed`` -> ``nn.Embedding``: the table (vocab, features) as is."""
    return {"weight": np.asarray(params["embedding"])}


def prefixed(prefix: str, tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``tensors`` under the module path ``prefix``: ``{'<prefix>.<name>': tensor}``."""
    return {f"{prefix}.{name}": value for name, value in tensors.items()}


def mlp(params: Mapping[str, Any], model_state: Any = None) -> dict[str, np.ndarray]:
    """The common MLP (``common.mlp_jax`` -> ``common.mlp_pytorch``): ``Dense_<i>`` ->
    ``net.layer<i+1>``. Both flatten their images, NHWC in JAX and NCHW in PyTorch: the same
    order for the MLP workloads' one-channel images."""
    del model_state  # the MLP has none
    state_dict: dict[str, np.ndarray] = {}
    for index in range(len(params)):
        state_dict.update(prefixed(f"net.layer{index + 1}", dense(params[f"Dense_{index}"])))
    return state_dict


# The workload's transfer definition.


def definition_module(name: str) -> str:
    """The import path of the transfer definition of registry row ``name``."""
    return f"algoperf.workloads.{registry.get_workload(name).module}.parity"


def load_definition(name: str) -> ModuleType:
    """The transfer definition of ``name``; ParityDefinitionError if missing or malformed."""
    path = definition_module(name)
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as error:
        if error.name is None or not (path == error.name or path.startswith(f"{error.name}.")):
            raise  # the definition exists but imports something missing
        folder = f"workloads/{registry.get_workload(name).module}"
        raise ParityDefinitionError(
            f"{name}: no parity transfer definition {path} ({folder}/parity.py); every "
            "implemented workload needs one: jax_to_pytorch(params, model_state) -> "
            "{pytorch name: numpy array}, see algoperf.workloads.common.parity") from None
    if not callable(getattr(module, "jax_to_pytorch", None)):
        raise ParityDefinitionError(f"{name}: {path} defines no function jax_to_pytorch")
    tolerances(name, module)  # malformed overrides fail here, not halfway through a check
    return module


def tolerances(name: str, definition: ModuleType | None = None) -> dict[str, Tolerance]:
    """DEFAULT_TOLERANCES with the definition's TOLERANCES overrides applied.

    A key is a quantity of DEFAULT_TOLERANCES, or ``'<quantity>:<suffix>'`` for the tensors of
    a state-dict quantity (``params``, ``model_state``, ``final_model_state``) whose PyTorch
    name ends in ``.<suffix>``: ``'model_state:running_var'``. Those tensors are then compared
    (and reported) as a quantity of their own. ``ROW_TOLERANCES`` (``{row: {key:
    Tolerance}}``) overrides them again for one registry row (a variant that needs its own).
    """
    definition = definition or load_definition(name)
    overrides = {**getattr(definition, "TOLERANCES", {}),
                 **getattr(definition, "ROW_TOLERANCES", {}).get(name, {})}
    unknown = sorted(key for key in overrides if key not in DEFAULT_TOLERANCES and (
        key.partition(":")[0] not in STATE_DICT_QUANTITIES or not key.partition(":")[2]))
    if unknown:
        raise ParityDefinitionError(
            f"{name}: TOLERANCES names unknown quantities {', '.join(unknown)}; known: "
            f"{', '.join(DEFAULT_TOLERANCES)}, and '<quantity>:<suffix>' for "
            f"{', '.join(STATE_DICT_QUANTITIES)}")
    merged = dict(DEFAULT_TOLERANCES)
    for quantity, value in overrides.items():
        merged[quantity] = Tolerance(*value)
    return merged


def learning_rate(name: str, default: float, definition: ModuleType | None = None) -> float:
    """The training-parity learning rate of row ``name``: ``default``, unless the definition's
    ``LEARNING_RATES`` (``{row: rate}``) names one (a model plain SGD at ``default`` makes
    diverge, where no two float32 runs stay close)."""
    definition = definition or load_definition(name)
    return float(getattr(definition, "LEARNING_RATES", {}).get(name, default))


def float64_training(name: str, definition: ModuleType | None = None) -> bool:
    """Whether row ``name``'s training parity runs in float64, from the definition's
    ``FLOAT64_TRAINING`` (a set of rows): for a model so ill-conditioned that each
    framework's float32 gradient is far from the exact one, so two float32 runs cannot agree
    however alike the implementations; in float64 they must agree to the usual tolerances."""
    definition = definition or load_definition(name)
    return name in getattr(definition, "FLOAT64_TRAINING", ())


def unresolved_training_difference(name: str, definition: ModuleType | None = None
                                   ) -> str | None:
    """Why row ``name``'s training parity is known to fail, from the definition's
    ``UNRESOLVED_TRAINING_DIFFERENCES`` (``{row: reason}``); None for every row that must
    pass. The parity tests then require the failure, so a fix is noticed."""
    definition = definition or load_definition(name)
    return getattr(definition, "UNRESOLVED_TRAINING_DIFFERENCES", {}).get(name)


def _numpy_tree(tree: Any) -> Any:
    import jax

    return jax.tree.map(lambda leaf: np.array(leaf), jax.device_get(tree))


def jax_to_pytorch(name: str, params: Any, model_state: Any,
                   definition: ModuleType | None = None) -> dict[str, np.ndarray]:
    """The PyTorch state_dict of JAX ``params``/``model_state`` by ``name``'s definition."""
    definition = definition or load_definition(name)
    state_dict = definition.jax_to_pytorch(_numpy_tree(params), _numpy_tree(model_state))
    return {key: np.asarray(value) for key, value in state_dict.items()}


def _unwrap(model: Any) -> Any:
    """The module inside a DistributedDataParallel (or DataParallel) wrapper."""
    import torch

    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def load_state_dict(name: str, model: Any, state_dict: Mapping[str, np.ndarray]) -> None:
    """Loads the converted ``state_dict`` into ``model`` strictly.

    ParityError, listing them, if a parameter or buffer of the model is missing (it would
    keep its PyTorch initialisation), a key is extra, or a shape differs; dtypes are the
    model's.
    """
    import torch

    model = _unwrap(model)
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    extra = sorted(set(state_dict) - set(expected))
    shapes = [f"{key}: transfer {tuple(np.shape(state_dict[key]))}, pytorch "
              f"{tuple(expected[key].shape)}" for key in expected
              if key in state_dict and tuple(np.shape(state_dict[key])) != tuple(
                  expected[key].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} PyTorch keys not covered (they would keep their "
                        f"PyTorch init): {', '.join(missing)}")
    if extra:
        problems.append(f"{len(extra)} keys the PyTorch model does not have: "
                        f"{', '.join(extra)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {'; '.join(shapes)}")
    if problems:
        raise ParityError(f"{name}: the JAX-to-PyTorch transfer does not fit the model: "
                          + "; ".join(problems))
    tensors = {key: torch.as_tensor(np.ascontiguousarray(state_dict[key]),
                                    dtype=value.dtype) for key, value in expected.items()}
    model.load_state_dict(tensors, strict=True)


def pytorch_state_dict(model: Any) -> dict[str, np.ndarray]:
    """The model's state_dict as numpy arrays (copies)."""
    return {key: value.detach().cpu().numpy().copy()
            for key, value in _unwrap(model).state_dict().items()}


def parameter_names(model: Any) -> set[str]:
    return {key for key, _ in _unwrap(model).named_parameters()}


# Comparison.


@dataclasses.dataclass(frozen=True)
class Difference:
    """How far JAX and PyTorch are apart in one quantity (over all its tensors or steps).

    ``max_abs`` is the largest ``|jax - pytorch|``; ``max_rel`` the largest
    ``|jax - pytorch| / |pytorch|`` over elements with ``|pytorch| > atol`` (relative errors
    of values that are zero up to rounding mean nothing); ``excess`` the largest ratio of the
    difference to what the tolerance allows (at most 1 passes); ``worst`` the tensor or step
    where that ratio is largest, and ``detail`` the element and its two values.
    """

    quantity: str
    max_abs: float
    max_rel: float
    excess: float
    worst: str
    detail: str
    tolerance: Tolerance

    @property
    def ok(self) -> bool:
        return self.excess <= 1.0

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "OUT OF TOLERANCE"
        return (f"{self.quantity}: max |diff| {self.max_abs:.2e}, max rel {self.max_rel:.2e} "
                f"(rtol {self.tolerance.rtol:g}, atol {self.tolerance.atol:g}): {verdict}; "
                f"worst {self.worst}{self.detail}")


def compare(quantity: str, entries: Iterable[tuple[str, Any, Any]],
            tolerance: Tolerance) -> Difference:
    """The Difference of ``quantity`` over ``(label, jax value, pytorch value)`` entries.

    Does not raise for values out of tolerance (``ParityResult.check`` does), only for
    shapes that differ. A NaN never agrees (not even with a NaN); equal infinities do.
    """
    max_abs = max_rel = excess = 0.0
    worst, detail = "", ""
    for label, jax_value, torch_value in entries:
        a = _to_numpy(jax_value).astype(np.float64)
        b = _to_numpy(torch_value).astype(np.float64)
        if a.shape != b.shape:
            raise ParityError(f"{quantity}: {label} has shape {a.shape} in JAX and {b.shape} "
                              "in PyTorch")
        if a.size == 0:
            continue
        with np.errstate(invalid="ignore"):
            diff = np.where(a == b, 0.0, np.abs(a - b))  # equal infinities agree
        diff = np.where(np.isnan(diff), np.inf, diff)  # NaN agrees with nothing
        allowed = tolerance.atol + tolerance.rtol * np.nan_to_num(np.abs(b), posinf=0.0)
        ratio = diff / allowed
        index = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        if ratio[index] > excess or not worst:
            excess = float(ratio[index])
            worst = label
            where = f"[{', '.join(map(str, index))}]" if a.ndim else ""
            detail = f"{where} (jax {a[index]:.7g}, pytorch {b[index]:.7g})"
        max_abs = max(max_abs, float(diff.max()))
        significant = np.abs(b) > tolerance.atol
        if significant.any():
            max_rel = max(max_rel, float((diff[significant] / np.abs(b[significant])).max()))
    return Difference(quantity, max_abs, max_rel, excess, worst, detail, tolerance)


@dataclasses.dataclass
class ParityResult:
    """The Differences of one parity check, by quantity (``'eval/logits'``, ``'params'``)."""

    workload: str
    check_name: str
    differences: dict[str, Difference] = dataclasses.field(default_factory=dict)
    curves: dict[str, list[float]] = dataclasses.field(default_factory=dict)  # per-step losses
    movement: dict[str, float] = dataclasses.field(default_factory=dict)  # max param change

    def add(self, key: str, entries: Iterable[tuple[str, Any, Any]],
            tolerance: Tolerance) -> Difference:
        self.differences[key] = compare(key, entries, tolerance)
        return self.differences[key]

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.differences.values())

    def summary(self) -> dict[str, dict[str, float]]:
        """``{quantity: {'max_abs': ..., 'max_rel': ...}}``."""
        return {key: {"max_abs": d.max_abs, "max_rel": d.max_rel}
                for key, d in self.differences.items()}

    def __str__(self) -> str:
        lines = [f"{self.workload} {self.check_name}:"]
        lines += [f"  {difference}" for difference in self.differences.values()]
        return "\n".join(lines)

    def check(self) -> ParityResult:
        """Itself if every quantity is within tolerance; ParityError naming the worst else."""
        failed = sorted((d for d in self.differences.values() if not d.ok),
                        key=lambda d: -d.excess)
        if failed:
            worst = failed[0]
            raise ParityError(
                f"{self.workload}: JAX and PyTorch differ in {self.check_name}: worst "
                f"{worst.quantity} at {worst.worst}{worst.detail}, {worst.excess:.3g}x the "
                f"tolerance\n{self}")
        return self


# The pair of models.


def trial_rngs(seed: int) -> Any:
    """The runner's (data, optimizer init, model init, update) keys of a trial seed."""
    return random_utils.split(random_utils.PRNGKey(seed), 4)


def _jax_key(rng: Any) -> Any:
    import jax.numpy as jnp

    return jnp.asarray(np.asarray(rng).astype(np.uint32))


def build_workload(name: str, framework: str, reduced: bool = False) -> spec.Workload:
    """Row ``name``'s ``framework`` workload; with ``reduced``, built with its
    ``reduced_settings`` (smaller inputs, same parameters: ``common.registered``)."""
    if reduced:
        from algoperf.workloads.common.registered import import_reduced

        return import_reduced(name, framework)
    return registry.import_workload(name, framework)


def init_jax(name: str, seed: int = 0, reduced: bool = False
             ) -> tuple[spec.Workload, Any, Any]:
    """The JAX workload of ``name`` (``reduced``: see ``build_workload``) and its
    ``init_model_fn`` parameters and model state."""
    workload = build_workload(name, "jax", reduced)
    params, model_state = workload.init_model_fn(_jax_key(trial_rngs(seed)[2]))
    return workload, params, model_state


@dataclasses.dataclass
class Pair:
    """A workload in both frameworks with the same weights: the JAX model as initialised, the
    PyTorch workload's model holding the transfer of its parameters and state."""

    name: str
    jax_workload: spec.Workload
    params: Any
    model_state: Any
    pytorch_workload: spec.Workload
    model: Any
    pytorch_model_state: Any
    definition: ModuleType
    tolerances: dict[str, Tolerance]
    seed: int = 0  # of the trial whose keys initialise, batch and step

    @classmethod
    def build(cls, name: str, seed: int = 0,
              jax_init: tuple[spec.Workload, Any, Any] | None = None,
              reduced: bool = False) -> Pair:
        """Initialises both models from the trial ``seed``'s model key (``jax_init``: an
        ``init_jax(name, seed, reduced)`` result to reuse) and loads the transfer of the JAX
        weights into the PyTorch one; ``reduced`` builds both workloads with their
        ``reduced_settings`` (smaller inputs, same parameters)."""
        definition = load_definition(name)
        jax_workload, params, model_state = jax_init or init_jax(name, seed, reduced)
        pytorch_workload = build_workload(name, "pytorch", reduced)
        model, pytorch_model_state = pytorch_workload.init_model_fn(trial_rngs(seed)[2])
        pair = cls(name, jax_workload, params, model_state, pytorch_workload, model,
                   pytorch_model_state, definition, tolerances(name, definition), seed)
        pair.reset_pytorch()
        return pair

    def transferred(self, params: Any = None, model_state: Any = None) -> dict[str, np.ndarray]:
        """The PyTorch state_dict of JAX weights (by default the pair's initial ones)."""
        params = self.params if params is None else params
        model_state = self.model_state if model_state is None else model_state
        return jax_to_pytorch(self.name, params, model_state, self.definition)

    def reset_pytorch(self) -> None:
        """Loads the transfer of the pair's JAX weights into its PyTorch model."""
        load_state_dict(self.name, self.model, self.transferred())

    def batches(self, data_dir: str | None, batch_size: int,
                num_batches: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """``num_batches`` training batches of each framework's input queue from the trial's
        data rng (the shared numpy pipeline), checked to hold the same values."""
        data_rng = trial_rngs(self.seed)[0]
        queues = [workload._build_input_queue(data_rng, "train", data_dir, batch_size)
                  for workload in (self.jax_workload, self.pytorch_workload)]
        pairs = [(next(queues[0]), next(queues[1])) for _ in range(num_batches)]
        for step, (jax_batch, torch_batch) in enumerate(pairs):
            _check_same_batch(self.name, step, jax_batch, torch_batch)
        return pairs


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _check_same_batch(name: str, step: int, jax_batch: Mapping[str, Any],
                      torch_batch: Mapping[str, Any]) -> None:
    """ParityError unless the batches hold the same arrays (NHWC and NCHW count as one)."""
    if set(jax_batch) != set(torch_batch):
        raise ParityError(f"{name}: batch {step} has keys {sorted(jax_batch)} in JAX and "
                          f"{sorted(torch_batch)} in PyTorch")
    for key, jax_value, torch_value in _batch_leaves(jax_batch, torch_batch):
        a, b = _to_numpy(jax_value), _to_numpy(torch_value)
        if a.ndim == 4 and a.shape != b.shape and a.shape == b.transpose(0, 2, 3, 1).shape:
            b = b.transpose(0, 2, 3, 1)  # NCHW -> NHWC
        if a.shape != b.shape or not np.array_equal(a, b.astype(a.dtype)):
            raise ParityError(f"{name}: batch {step} '{key}' differs between the frameworks' "
                              "input queues; parity needs the same batches")


def _batch_leaves(jax_value: Any, torch_value: Any,
                  path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(path, jax array, torch tensor)`` of two batches, through nested dicts and tuples
    (a graph batch's ``GraphsTuple``: 'inputs.senders')."""
    if isinstance(jax_value, Mapping):
        for key in jax_value:
            yield from _batch_leaves(jax_value[key], torch_value[key],
                                     f"{path}.{key}" if path else str(key))
    elif isinstance(jax_value, tuple):
        fields = getattr(jax_value, "_fields", range(len(jax_value)))
        for field, a, b in zip(fields, jax_value, torch_value, strict=True):
            yield from _batch_leaves(a, b, f"{path}.{field}")
    else:
        yield path, jax_value, torch_value


def _add_state(result: ParityResult, prefix: str, quantity: str, keys: Iterable[str],
               transferred: Mapping[str, np.ndarray], pytorch: Mapping[str, np.ndarray],
               tolerances: Mapping[str, Tolerance]) -> None:
    """Compares state_dict tensors ``keys``: the transfer of the JAX values against PyTorch's,
    as ``quantity``, or as ``quantity:<suffix>`` where a tolerance of that name exists."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        specific = f"{quantity}:{key.rsplit('.', 1)[-1]}"
        groups.setdefault(specific if specific in tolerances else quantity, []).append(key)
    for group, members in groups.items():
        result.add(prefix + group, [(key, transferred[key], pytorch[key]) for key in members],
                   tolerances[group])


def _float_buffers(pair: Pair, state_dict: Mapping[str, np.ndarray]) -> list[str]:
    """Buffers that are model state: floating point (not counters like
    ``num_batches_tracked``, which flax does not keep)."""
    names = parameter_names(pair.model)
    return [key for key, value in state_dict.items()
            if key not in names and np.issubdtype(value.dtype, np.floating)]


def output_parity(pair: Pair, batch: tuple[dict[str, Any], dict[str, Any]],
                  modes: Iterable[spec.ForwardPassMode] = (EVAL, TRAIN)) -> ParityResult:
    """``model_fn`` and ``loss_fn`` of both frameworks on one batch, per mode.

    EVAL: ``update_batch_norm=False``. TRAIN: dropout off, ``update_batch_norm=True``, so
    batch norm normalises with the batch's statistics in both frameworks (with False, AlgoPerf's
    JAX models normalise with the running averages and its PyTorch models with the batch's;
    see docs/workloads.md) and the updated statistics are compared too; the PyTorch model is
    reset to the transferred weights afterwards. Compares logits, ``loss_fn``'s summed and
    per-example losses (mask: the batch's weights), and once both ``loss_fn``s on the JAX
    logits with the last quarter of the rows masked out and label smoothing. ParityError if
    anything is out of tolerance.
    """
    jax_batch, torch_batch = batch
    rng = trial_rngs(pair.seed)[3]
    tol = pair.tolerances
    result = ParityResult(pair.name, "output parity")
    for mode in modes:
        update = mode == TRAIN
        jax_logits, jax_state = pair.jax_workload.model_fn(
            pair.params, jax_batch, pair.model_state, mode, _jax_key(rng), update,
            **DROPOUT_OFF)
        torch_logits, _ = pair.pytorch_workload.model_fn(
            pair.model, torch_batch, pair.pytorch_model_state, mode, rng, update,
            **DROPOUT_OFF)
        prefix = "eval" if mode == EVAL else "train"
        result.add(f"{prefix}/logits", _output_entries(jax_logits, torch_logits),
                   tol["logits" if mode == EVAL else "train_logits"])
        jax_loss = pair.jax_workload.loss_fn(jax_batch["targets"], jax_logits,
                                             jax_batch.get("weights"))
        torch_loss = pair.pytorch_workload.loss_fn(torch_batch["targets"], torch_logits,
                                                   torch_batch.get("weights"))
        result.add(f"{prefix}/loss", [("summed", jax_loss["summed"], torch_loss["summed"]),
                                      ("n_valid_examples", jax_loss["n_valid_examples"],
                                       torch_loss["n_valid_examples"])], tol["loss"])
        result.add(f"{prefix}/per_example", [("per_example", jax_loss["per_example"],
                                              torch_loss["per_example"])], tol["per_example"])
        if update:
            current = pytorch_state_dict(pair.model)
            buffers = _float_buffers(pair, current)
            if buffers:  # a stateless model has nothing to update
                _add_state(result, f"{prefix}/", "model_state", buffers,
                           pair.transferred(model_state=jax_state), current, tol)
            pair.reset_pytorch()
        if mode == EVAL:
            result.add("loss_fn", _same_logits_losses(pair, batch, jax_logits), tol["loss_fn"])
    return result.check()


def _output_entries(jax_outputs: Any, torch_outputs: Any) -> list[tuple[str, Any, Any]]:
    """The compared arrays of ``model_fn``'s outputs: the logits, or both arrays of the
    ``(logits, logit_paddings)`` pair of AlgoPerf's speech workloads."""
    if isinstance(jax_outputs, tuple):
        return [(label, a, b) for label, a, b in zip(
            ("logits", "logit_paddings"), jax_outputs, torch_outputs, strict=True)]
    return [("logits", jax_outputs, torch_outputs)]


def _same_logits_losses(pair: Pair, batch: tuple[dict[str, Any], dict[str, Any]],
                        jax_logits: Any) -> list[tuple[str, Any, Any]]:
    """Both loss_fns on the same logits (each array of a ``(logits, paddings)`` pair), the
    last quarter of the rows masked, labels smoothed."""
    import jax.numpy as jnp
    import torch

    jax_batch, torch_batch = batch
    parts = jax_logits if isinstance(jax_logits, tuple) else (jax_logits,)
    arrays = [np.array(_to_numpy(part)) for part in parts]  # writable copies, as torch wants
    rows = len(arrays[0])
    mask = np.ones(rows, np.float32)
    mask[rows - max(1, rows // 4):] = 0.0
    targets = torch_batch["targets"]
    device = _device(targets[0] if isinstance(targets, tuple) else targets)

    def framework(convert):
        converted = tuple(convert(array) for array in arrays)
        return converted if isinstance(jax_logits, tuple) else converted[0]

    jax_out = pair.jax_workload.loss_fn(jax_batch["targets"], framework(jnp.asarray),
                                        jnp.asarray(mask), LABEL_SMOOTHING)
    torch_out = pair.pytorch_workload.loss_fn(
        torch_batch["targets"], framework(lambda a: torch.as_tensor(a, device=device)),
        torch.as_tensor(mask, device=device), LABEL_SMOOTHING)
    return [(key, jax_out[key], torch_out[key])
            for key in ("summed", "n_valid_examples", "per_example")]


def _device(tensor: Any) -> Any:
    return getattr(tensor, "device", None)


def _mean_loss(workload: spec.Workload, batch: Mapping[str, Any], logits: Any) -> Any:
    loss = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
    return loss["summed"] / loss["n_valid_examples"]


def _jax_float64(leaf: Any) -> Any:
    import jax.numpy as jnp

    leaf = jnp.asarray(leaf)
    return leaf.astype(jnp.float64) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf


def _torch_float64(tree: Any) -> Any:
    import torch

    if isinstance(tree, torch.Tensor):
        return tree.double() if tree.is_floating_point() else tree
    if isinstance(tree, Mapping):
        return {key: _torch_float64(value) for key, value in tree.items()}
    return tree


def _jax_sgd(pair: Pair, batches: list[dict[str, Any]], learning_rate: float,
             float64: bool = False) -> tuple[list[float], Any, Any]:
    """Must run under ``jax.experimental.enable_x64`` when ``float64``."""
    import jax
    import optax

    workload = pair.jax_workload
    optimizer = optax.sgd(learning_rate)
    rng = _jax_key(trial_rngs(pair.seed)[3])

    @jax.jit
    def step(params, model_state, opt_state, batch):
        def loss_fn(params):
            logits, new_state = workload.model_fn(params, batch, model_state, TRAIN, rng, True,
                                                  **DROPOUT_OFF)
            return _mean_loss(workload, batch, logits), new_state

        (loss, new_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, loss

    params, model_state = pair.params, pair.model_state
    if float64:
        params, model_state, batches = jax.tree.map(_jax_float64, (params, model_state, batches))
    opt_state = optimizer.init(params)
    losses = []
    for batch in batches:
        params, model_state, opt_state, loss = step(params, model_state, opt_state, batch)
        losses.append(float(loss))
    return losses, params, model_state


def _pytorch_sgd(pair: Pair, batches: list[dict[str, Any]], learning_rate: float,
                 float64: bool = False) -> tuple[list[float], Any]:
    import torch

    workload = pair.pytorch_workload
    model = copy.deepcopy(pair.model)
    model_state = copy.deepcopy(pair.pytorch_model_state)
    if float64:
        model, model_state = model.double(), _torch_float64(model_state)
        batches = [_torch_float64(batch) for batch in batches]
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.0)
    rng = trial_rngs(pair.seed)[3]
    losses = []
    for batch in batches:
        logits, model_state = workload.model_fn(model, batch, model_state, TRAIN, rng, True,
                                                **DROPOUT_OFF)
        loss = _mean_loss(workload, batch, logits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses, model


def training_parity(pair: Pair, batches: list[tuple[dict[str, Any], dict[str, Any]]],
                    learning_rate: float = 0.05) -> ParityResult:
    """Plain SGD (no momentum) from the pair's weights, one step per batch, in both frameworks.

    Compares the mean loss of every step (before its update), then the parameters and the
    floating-point model state (batch-norm statistics) after the last step. The pair's own
    PyTorch model is left as it was (a copy trains). In float64 (both frameworks: weights,
    batches and arithmetic) for the rows the definition's ``FLOAT64_TRAINING`` names.
    ParityError if out of tolerance.
    """
    from jax.experimental import enable_x64

    if not batches:
        raise ValueError("training parity needs at least one batch")
    float64 = float64_training(pair.name, pair.definition)
    with enable_x64() if float64 else contextlib.nullcontext():
        jax_losses, params, model_state = _jax_sgd(pair, [b[0] for b in batches],
                                                   learning_rate, float64)
        params, model_state = _numpy_tree(params), _numpy_tree(model_state)
    torch_losses, model = _pytorch_sgd(pair, [b[1] for b in batches], learning_rate, float64)
    tol = pair.tolerances
    result = ParityResult(pair.name, f"training parity ({len(batches)} SGD steps, "
                                     f"lr {learning_rate:g}{', float64' if float64 else ''})")
    result.add("train_loss", [(f"step {step}", jax_loss, torch_loss) for step, (
        jax_loss, torch_loss) in enumerate(zip(jax_losses, torch_losses, strict=True))],
        tol["train_loss"])
    transferred = pair.transferred(params, model_state)
    trained = pytorch_state_dict(model)
    names = [key for key in trained if key in parameter_names(model)]
    _add_state(result, "", "params", names, transferred, trained, tol)
    buffers = _float_buffers(pair, trained)
    if buffers:
        _add_state(result, "", "final_model_state", buffers, transferred, trained, tol)
    result.curves = {"jax": jax_losses, "pytorch": torch_losses}
    # Parameters that never moved would agree trivially: training must change them.
    initial = pair.transferred()
    for framework, final in (("jax", transferred), ("pytorch", trained)):
        moved = max(float(np.abs(final[key].astype(np.float64) - initial[key]).max())
                    for key in names)
        result.movement[framework] = moved
        if moved <= tol["params"].atol:
            raise ParityError(f"{pair.name}: {len(batches)} SGD steps at lr {learning_rate:g} "
                              f"moved no parameter in {framework} (max change {moved:.2e}); "
                              "training parity would hold trivially")
    return result.check()


def run(name: str, data_dir: str | None, *, seed: int = 0, batch_size: int = 8,
        steps: int = 5, learning_rate: float = 0.05, reduced: bool = False
        ) -> list[ParityResult]:
    """Output and training parity of registry row ``name``: the whole harness in one call."""
    pair = Pair.build(name, seed, reduced=reduced)
    batches = pair.batches(data_dir, batch_size, steps)
    return [output_parity(pair, batches[0]), training_parity(pair, batches, learning_rate)]


__all__ = [
    "DEFAULT_TOLERANCES", "Difference", "Pair", "ParityDefinitionError", "ParityError",
    "ParityResult", "Tolerance", "batch_norm", "build_workload", "compare", "conv", "dense",
    "embedding", "float64_training",
    "init_jax", "jax_to_pytorch", "layer_norm", "learning_rate", "load_definition",
    "load_state_dict", "mlp",
    "output_parity", "prefixed", "run", "tolerances", "training_parity",
    "unresolved_training_difference",
]
