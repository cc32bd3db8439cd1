"""Framework-free base of the small image-classification workloads whose data fits in memory.

A subclass names its registry row and loads its splits as numpy arrays (its
``input_pipeline``); this class supplies everything else that does not depend on the
framework: AlgoPerf's ``eval_train`` size rule, the numpy input queues (``common.pipeline``)
and the evaluation loop, which sums per-batch metrics weighted by the padding mask and divides
by the number of examples, as AlgoPerf does. The JAX and PyTorch subclasses
(``classification_jax``, ``classification_pytorch``) add the loss and the conversion of numpy
batches to their tensors; each workload's ``models.py`` adds the model.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from algoperf import spec
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.registered import RegisteredWorkload

SPLITS = ("train", "eval_train", "validation", "test")


class ImageClassificationWorkload(RegisteredWorkload):
    """Softmax classification of images held in memory, scored on accuracy."""

    num_classes: int
    input_shape: tuple[int, ...]  # one example, height x width x channels

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

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SOFTMAX_CROSS_ENTROPY

    @property
    def num_eval_train_examples(self) -> int:
        # AlgoPerf: the validation size rounded up to whole eval batches.
        batches = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return batches * self.eval_batch_size

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
