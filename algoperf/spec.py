"""The submission API, compatible with AlgoPerf v0.6 down to names and enum values.

A submission is a module defining ``get_batch_size``, ``init_optimizer_state``,
``update_params``, ``data_selection`` and optionally ``prepare_for_eval``; it talks to the
benchmark through a :class:`Workload`. No framework is imported at module level, so the
registry and scoring stay framework-free.
"""

from __future__ import annotations

import abc
import enum
import logging
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)


class LossType(enum.Enum):
    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ForwardPassMode(enum.Enum):
    TRAIN = 0
    EVAL = 1


class ParameterType(enum.Enum):
    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12  # fused query, key and value
    ATTENTION_KV = 13  # fused key and value
    ATTENTION_BIAS = 14


class ShapeTuple:
    """A parameter shape kept whole as a pytree leaf, so shape trees map like param trees."""

    def __init__(self, shape_tuple: tuple[int, ...]):
        self.shape_tuple = tuple(shape_tuple)

    def __repr__(self) -> str:
        return f"ShapeTuple({self.shape_tuple})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ShapeTuple):
            return self.shape_tuple == other.shape_tuple
        return self.shape_tuple == other

    def __hash__(self) -> int:
        return hash(self.shape_tuple)


# Type aliases, documentation-level as in AlgoPerf.
Tensor = Any
Shape = tuple[int, ...] | ShapeTuple
ParameterShapeTree = dict[str, dict[str, Shape]]
ParameterKey = str
ParameterContainer = Any  # nested dict pytree (JAX) or the torch.nn.Module itself (PyTorch)
ParameterTypeTree = dict[ParameterKey, dict[ParameterKey, ParameterType]]
RandomState = Any  # a JAX key or its numpy emulation for PyTorch
OptimizerState = dict[str, Any] | tuple[Any, Any]
Hyperparameters = Any  # a namedtuple called Hyperparameters, or None under self-tuning
Timing = int
Steps = int
ModelAuxiliaryState = Any
ModelInitState = tuple[ParameterContainer, ModelAuxiliaryState]
UpdateReturn = tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]
InitOptimizerFn = Callable[
    [ParameterShapeTree, Hyperparameters, RandomState], OptimizerState
]
UpdateParamsFn = Callable[..., UpdateReturn]
PrepareForEvalFn = Callable[..., UpdateReturn]
DataSelectionFn = Callable[..., dict[str, Tensor]]


class TrainingCompleteError(Exception):
    """Raised by a submission's ``update_params`` to declare that it has finished training."""


class Workload(metaclass=abc.ABCMeta):
    """A model, a loss, a dataset and a target: what a submission is timed on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        self._param_shapes: ParameterShapeTree | None = None
        self._param_types: ParameterTypeTree | None = None
        self._eval_iters: dict[str, Iterator[dict[str, Tensor]]] = {}
        self.metrics_logger = None

    @property
    @abc.abstractmethod
    def target_metric_name(self) -> str:
        """Metric name without split prefix, e.g. 'accuracy'."""

    @property
    @abc.abstractmethod
    def validation_target_value(self) -> float:
        """Target on validation/<target_metric_name>."""

    @property
    @abc.abstractmethod
    def test_target_value(self) -> float:
        """Target on test/<target_metric_name>."""

    @property
    @abc.abstractmethod
    def loss_type(self) -> LossType:
        """The loss this workload trains with."""

    @property
    @abc.abstractmethod
    def num_train_examples(self) -> int:
        """Size of the training split."""

    @property
    @abc.abstractmethod
    def eval_batch_size(self) -> int:
        """Global batch size for evaluation (submitters may not change it)."""

    @property
    @abc.abstractmethod
    def num_eval_train_examples(self) -> int:
        """How many training examples each eval scores."""

    @property
    @abc.abstractmethod
    def num_validation_examples(self) -> int:
        """Size of the validation split."""

    @property
    @abc.abstractmethod
    def num_test_examples(self) -> int | None:
        """Size of the test split, or None when it has none."""

    @property
    @abc.abstractmethod
    def train_mean(self) -> Any:
        """Input normalisation mean."""

    @property
    @abc.abstractmethod
    def train_stddev(self) -> Any:
        """Input normalisation standard deviation."""

    @property
    @abc.abstractmethod
    def max_allowed_runtime_sec(self) -> int:
        """External-ruleset runtime budget in seconds."""

    @property
    @abc.abstractmethod
    def eval_period_time_sec(self) -> int:
        """Minimum wall-clock seconds between evaluations."""

    @property
    @abc.abstractmethod
    def step_hint(self) -> int:
        """About how many steps the baseline takes within the budget (for schedules)."""

    @abc.abstractmethod
    def has_reached_validation_target(self, eval_result: dict[str, float]) -> bool:
        """Whether the validation metric beats the target."""

    @abc.abstractmethod
    def has_reached_test_target(self, eval_result: dict[str, float]) -> bool:
        """Whether the test metric beats the target."""

    @abc.abstractmethod
    def _build_input_queue(
        self,
        data_rng: RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: bool | None = None,
        repeat_final_dataset: bool | None = None,
        num_batches: int | None = None,
    ) -> Iterator[dict[str, Tensor]]:
        """An iterator of batches of ``split``; the one member submissions may not call."""

    @abc.abstractmethod
    def is_output_params(self, param_key: ParameterKey) -> bool:
        """Whether ``param_key`` belongs to the output layer."""

    @abc.abstractmethod
    def init_model_fn(self, rng: RandomState) -> ModelInitState:
        """Initial params and model state; also sets the param shapes and types."""

    @abc.abstractmethod
    def model_fn(
        self,
        params: ParameterContainer,
        augmented_and_preprocessed_input_batch: dict[str, Tensor],
        model_state: ModelAuxiliaryState,
        mode: ForwardPassMode,
        rng: RandomState,
        update_batch_norm: bool,
        dropout_rate: float | None = None,
    ) -> tuple[Tensor, ModelAuxiliaryState]:
        """Pre-activation logits and the new model state."""

    @abc.abstractmethod
    def loss_fn(
        self,
        label_batch: Tensor,
        logits_batch: Tensor,
        mask_batch: Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> dict[str, Tensor]:
        """{'summed', 'n_valid_examples', 'per_example'}; unsynced, unregularised."""

    @abc.abstractmethod
    def _eval_model_on_split(
        self,
        split: str,
        num_examples: int,
        global_batch_size: int,
        params: ParameterContainer,
        model_state: ModelAuxiliaryState,
        rng: RandomState,
        data_dir: str,
        global_step: int = 0,
    ) -> dict[str, float]:
        """Metrics of the model on one split."""

    @property
    def param_shapes(self) -> ParameterShapeTree:
        if self._param_shapes is None:
            raise ValueError("Workload.param_shapes is set by init_model_fn; call it first.")
        return self._param_shapes

    @property
    def model_params_types(self) -> ParameterTypeTree:
        if self._param_types is None:
            raise ValueError(
                "Workload.model_params_types is set by init_model_fn; call it first."
            )
        return self._param_types

    def attach_metrics_logger(self, metrics_logger: Any) -> None:
        self.metrics_logger = metrics_logger

    def output_activation_fn(self, logits_batch: Tensor, framework: str) -> Tensor:
        """The activation that turns logits into predictions for this workload's loss."""
        if framework not in ("jax", "pytorch"):
            raise ValueError(f"framework must be 'jax' or 'pytorch', not {framework!r}")
        if self.loss_type in (LossType.MEAN_SQUARED_ERROR, LossType.MEAN_ABSOLUTE_ERROR):
            return logits_batch
        if framework == "jax":
            import jax

            if self.loss_type == LossType.SIGMOID_CROSS_ENTROPY:
                return jax.nn.sigmoid(logits_batch)
            return jax.nn.softmax(logits_batch, axis=-1)
        import torch

        if self.loss_type == LossType.SIGMOID_CROSS_ENTROPY:
            return torch.sigmoid(logits_batch)
        return torch.softmax(logits_batch, dim=-1)

    def eval_model(
        self,
        global_batch_size: int,
        params: ParameterContainer,
        model_state: ModelAuxiliaryState,
        rng: RandomState,
        data_dir: str,
        imagenet_v2_data_dir: str | None,
        global_step: int,
    ) -> dict[str, float]:
        """Evaluates on eval_train, validation and (if any) test, with split-prefixed keys."""
        logger.info("Evaluating on the training split.")
        results = {
            f"train/{k}": v
            for k, v in self._eval_model_on_split(
                "eval_train", self.num_eval_train_examples, global_batch_size, params,
                model_state, rng, data_dir, global_step,
            ).items()
        }
        logger.info("Evaluating on the validation split.")
        for k, v in self._eval_model_on_split(
            "validation", self.num_validation_examples, global_batch_size, params,
            model_state, rng, data_dir, global_step,
        ).items():
            results[f"validation/{k}"] = v
        results["validation/num_examples"] = self.num_validation_examples
        if self.num_test_examples is not None:
            logger.info("Evaluating on the test split.")
            try:
                test = self._eval_model_on_split(
                    "test", self.num_test_examples, global_batch_size, params, model_state,
                    rng, imagenet_v2_data_dir or data_dir, global_step,
                )
            except NotImplementedError:
                test = None
            if test is not None:
                for k, v in test.items():
                    results[f"test/{k}"] = v
                results["test/num_examples"] = self.num_test_examples
        return results


# The submission functions, with AlgoPerf's exact signatures. The runner checks a submission's
# functions against these; the bodies document the contract.


def get_batch_size(workload_name: str) -> int:
    """Global training batch size for ``workload_name``."""
    raise NotImplementedError("a submission defines get_batch_size")


def init_optimizer_state(
    workload: Workload,
    model_params: ParameterContainer,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    rng: RandomState,
) -> OptimizerState:
    """The optimizer state of a new trial."""
    raise NotImplementedError("a submission defines init_optimizer_state")


def update_params(
    workload: Workload,
    current_param_container: ParameterContainer,
    current_params_types: ParameterTypeTree,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    batch: dict[str, Tensor],
    loss_type: LossType,
    optimizer_state: OptimizerState,
    eval_results: list[tuple[int, float]],
    global_step: int,
    rng: RandomState,
    train_state: dict[str, Any] | None = None,
) -> UpdateReturn:
    """One training step: returns (optimizer_state, params, model_state)."""
    raise NotImplementedError("a submission defines update_params")


def prepare_for_eval(
    workload: Workload,
    current_param_container: ParameterContainer,
    current_params_types: ParameterTypeTree,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    loss_type: LossType,
    optimizer_state: OptimizerState,
    eval_results: list[tuple[int, float]],
    global_step: int,
    rng: RandomState,
) -> UpdateReturn:
    """Called before each eval (timed): returns (optimizer_state, params, model_state)."""
    raise NotImplementedError("a submission may define prepare_for_eval")


def data_selection(
    workload: Workload,
    input_queue: Iterator[dict[str, Any]],
    optimizer_state: OptimizerState,
    current_param_container: ParameterContainer,
    model_state: ModelAuxiliaryState,
    hyperparameters: Hyperparameters,
    global_step: int,
    rng: RandomState,
) -> dict[str, Tensor]:
    """The batch for this step (timed)."""
    raise NotImplementedError("a submission defines data_selection")
