"""Framework-free base of the small image-classification workloads whose data fits in memory.

A subclass names its registry row, its model shape (an MLP) and loads its splits as numpy
arrays; this class supplies everything else that does not depend on the framework: the
constants read from the registry, AlgoPerf's ``eval_train`` size rule, the numpy input queues
(``workloads.pipeline``) and the evaluation loop, which sums per-batch metrics weighted by the
padding mask and divides by the number of examples, as AlgoPerf does. The JAX and PyTorch
subclasses (``classification_jax``, ``classification_pytorch``) add the model, the loss and the
conversion of numpy batches to their tensors.
"""

from __future__ import annotations

import abc
import functools
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from algoperf import spec
from algoperf.workloads import pipeline, registry

SPLITS = ("train", "eval_train", "validation", "test")


class ImageClassificationWorkload(spec.Workload):
    """Softmax classification of images held in memory, scored on accuracy."""

    workload_name: str  # the registry row: targets, budget, eval period, step hint
    num_classes: int
    input_shape: tuple[int, ...]  # one example, height x width x channels
    hidden_sizes: tuple[int, ...]  # widths of the MLP's hidden layers
    activation: str  # the hidden layers' nonlinearity: "relu" or "sigmoid"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arrays: dict[tuple[str, str | None], dict[str, np.ndarray]] = {}

    @abc.abstractmethod
    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        """``{'inputs': float32 (N, *input_shape), 'targets': int (N,)}`` of one stored split.

        ``split`` is 'train', 'validation' or 'test'; inputs are already normalised.
        """

    @abc.abstractmethod
    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        """One numpy batch as the framework's tensors, in the framework's layout."""

    @abc.abstractmethod
    def _eval_batch_metrics(
        self, params: spec.ParameterContainer, batch: dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
    ) -> dict[str, spec.Tensor]:
        """Weighted sums over one eval batch: ``{'accuracy': correct, 'loss': summed loss}``."""

    # Constants of the registry row.

    @functools.cached_property
    def _info(self) -> registry.WorkloadInfo:
        return registry.get_workload(self.workload_name)

    @property
    def target_metric_name(self) -> str:
        return self._info.target_metric_name

    @property
    def validation_target_value(self) -> float:
        return self._info.validation_target_value

    @property
    def test_target_value(self) -> float:
        return self._info.test_target_value

    @property
    def max_allowed_runtime_sec(self) -> float:
        return self._info.max_allowed_runtime_sec

    @property
    def eval_period_time_sec(self) -> float:
        # AlgoPerf's are whole seconds; digits evaluates every 0.25 s (see the registry).
        return self._info.eval_period_time_sec

    @property
    def step_hint(self) -> int:
        return self._info.step_hint

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SOFTMAX_CROSS_ENTROPY

    @property
    def num_eval_train_examples(self) -> int:
        # AlgoPerf: the validation size rounded up to whole eval batches.
        batches = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return batches * self.eval_batch_size

    def has_reached_validation_target(self, eval_result: dict[str, float]) -> bool:
        return self._beats(eval_result[f"validation/{self.target_metric_name}"],
                           self.validation_target_value)

    def has_reached_test_target(self, eval_result: dict[str, float]) -> bool:
        return self._beats(eval_result[f"test/{self.target_metric_name}"],
                           self.test_target_value)

    def _beats(self, value: float, target: float) -> bool:
        # The runner's comparisons are strict (scoring's are not, see registry.reached).
        return value > target if self._info.direction == registry.MAXIMIZE else value < target

    # Data.

    def _split_arrays(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        """The numpy arrays of ``split``, loaded once; 'eval_train' is a prefix of 'train'."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if split == "eval_train":
            train = self._split_arrays("train", data_dir)
            return {key: value[:self.num_eval_train_examples] for key, value in train.items()}
        if (split, data_dir) not in self._arrays:
            self._arrays[split, data_dir] = self._load_split(split, data_dir)
        return self._arrays[split, data_dir]

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: bool | None = None,
        repeat_final_dataset: bool | None = None,
        num_batches: int | None = None,
    ) -> Iterator[dict[str, spec.Tensor]]:
        """Shuffled endless batches for 'train' (seeded by ``data_rng``); ordered, padded
        batches for the eval splits, repeated unless ``repeat_final_dataset`` is False."""
        del cache  # the arrays always stay in memory
        arrays = self._split_arrays(split, data_dir)
        if split == "train":
            batches = pipeline.train_batches(
                arrays, global_batch_size, pipeline.seed_from_rng(data_rng))
        else:
            repeat = repeat_final_dataset is None or repeat_final_dataset
            batches = pipeline.eval_batches(arrays, global_batch_size, repeat=repeat)
        if num_batches is not None:
            batches = itertools.islice(batches, num_batches)
        return map(self._to_framework_batch, batches)

    # Evaluation.

    def _eval_model_on_split(
        self,
        split: str,
        num_examples: int,
        global_batch_size: int,
        params: spec.ParameterContainer,
        model_state: spec.ModelAuxiliaryState,
        rng: spec.RandomState,
        data_dir: str,
        global_step: int = 0,
    ) -> dict[str, float]:
        """Accuracy and mean loss on ``num_examples`` of ``split``.

        The eval iterator of each split is built on the first call and cached; evaluation is
        deterministic (no dropout, no shuffling), so ``rng`` is not needed.
        """
        del rng, global_step
        if split not in self._eval_iters:
            self._eval_iters[split] = self._build_input_queue(
                None, split, data_dir, global_batch_size, cache=True, repeat_final_dataset=True)
        totals: dict[str, Any] = {"accuracy": 0.0, "loss": 0.0}
        for _ in range(math.ceil(num_examples / global_batch_size)):
            metrics = self._eval_batch_metrics(params, next(self._eval_iters[split]),
                                               model_state)
            totals = {name: total + metrics[name] for name, total in totals.items()}
        totals = self._sum_across_processes(totals)
        return {name: float(total) / num_examples for name, total in totals.items()}

    def _sum_across_processes(self, totals: dict[str, Any]) -> dict[str, Any]:
        """Metric sums over all processes of a distributed run; one process: unchanged."""
        return totals
