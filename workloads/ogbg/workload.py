"""The ogbg workload, framework-free part: sizes, the variant settings, input queues, eval.

AlgoPerf's ``ogbg``: a graph network predicting molpcba's 128 binary tasks; target and budget
in the registry row. Data: the arrays ``algoperf datasets download ogbg`` prepares in
``<data_dir>/ogbg/``, batched by ``input_pipeline``. A batch is ``{'inputs': GraphsTuple,
'targets': (graphs, 128), 'weights': (graphs, 128)}``; its graph rows include each shard's
padding graphs, so there are ``b + num_shards`` of them for a batch size ``b``.

Evaluation differs from AlgoPerf's in two ways, both so that one evaluation of a split is a
fixed set of graphs, every time:

- 'eval_train' is a fixed seeded sample of 43,793 training graphs (AlgoPerf draws a new
  shuffled stretch of the training stream at every evaluation);
- each evaluation takes one whole pass over the split (AlgoPerf takes ``ceil(n / b)``
  batches from a cycled iterator; dynamic batching packs fewer than ``b`` graphs into a
  batch when the edge budget fills first, so at small eval batches it skipped graphs and the
  next evaluation started elsewhere). At AlgoPerf's eval batch of 32,768 both take the same
  two batches.

Split sizes follow the prepared data: the official files give 350,343 / 43,793 / 43,793.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from algoperf import spec
from algoperf.datasets import ogbg as ogbg_data
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.registered import RegisteredWorkload
from algoperf.workloads.ogbg import input_pipeline, metrics

DROPOUT_RATE = 0.1
NUM_EVAL_TRAIN = 43_793


class BaseOgbgWorkload(RegisteredWorkload):
    """ogbg-molpcba, framework-free: the JAX and PyTorch ``OgbgWorkload`` classes build on it."""

    workload_name = "ogbg"
    variant_settings = ("activation_fn_name", "hidden_dims", "latent_dim",
                        "num_message_passing_steps")
    activation_fn_name = "relu"
    hidden_dims: tuple[int, ...] = (256,)
    latent_dim = 256
    num_message_passing_steps = 5
    official_split_sizes = ogbg_data.OFFICIAL_COUNTS
    num_outputs = ogbg_data.NUM_TASKS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden_dims = tuple(self.hidden_dims)
        self._graphs: dict[tuple[str, str], ogbg_data.Graphs] = {}

    # Sizes.

    @property
    def num_eval_train_examples(self) -> int:
        return min(NUM_EVAL_TRAIN, self.num_train_examples)

    @property
    def eval_batch_size(self) -> int:
        return 32768

    @property
    def loss_type(self) -> spec.LossType:
        # AlgoPerf declares softmax; the loss is the sigmoid cross-entropy of each task.
        return spec.LossType.SIGMOID_CROSS_ENTROPY

    @property
    def train_mean(self):
        raise NotImplementedError("ogbg's inputs are graphs; they are not normalised")

    @property
    def train_stddev(self):
        raise NotImplementedError("ogbg's inputs are graphs; they are not normalised")

    # Data.

    def _directory(self, data_dir: str | None) -> str:
        if data_dir is None:
            raise UserError("ogbg needs --data-dir with ogbg-molpcba prepared in it")
        return f"{data_dir}/{ogbg_data.NAME}"

    def _prepared_split_sizes(self, data_dir: str | None) -> dict[str, int]:
        return ogbg_data.counts(self._directory(data_dir))

    def _split_graphs(self, split: str, data_dir: str | None) -> ogbg_data.Graphs:
        stored = "train" if split == "eval_train" else split
        if (stored, data_dir) not in self._graphs:
            self._read_split_sizes(data_dir)
            self._graphs[stored, data_dir] = ogbg_data.load(self._directory(data_dir), stored)
        return self._graphs[stored, data_dir]

    def _num_shards(self) -> int:
        """How many devices (JAX) or processes (PyTorch DDP) a batch is split over."""
        return 1

    @abc.abstractmethod
    def _to_framework_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One numpy batch of all shards as the framework's tensors (this process's shard)."""

    def _numpy_batches(self, data_rng: spec.RandomState | None, split: str,
                       data_dir: str | None, global_batch_size: int,
                       repeat: bool) -> Iterator[dict[str, Any]]:
        graphs = self._split_graphs(split, data_dir)
        shards = self._num_shards()
        if split == "train":
            order = input_pipeline.shuffled_order(len(graphs), pipeline.seed_from_rng(data_rng))
            return input_pipeline.batches(graphs, order, global_batch_size, shards)
        if split == "eval_train":
            ids = input_pipeline.eval_train_ids(len(graphs), self.num_eval_train_examples)
        else:
            ids = np.arange(len(graphs))

        def passes():
            while True:
                yield from input_pipeline.batches(graphs, ids.tolist(), global_batch_size,
                                                  shards)
                if not repeat:
                    return
        return passes()

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
        """Endless dynamically batched training graphs (seeded by ``data_rng``); the eval
        splits in order, repeated unless ``repeat_final_dataset`` is False."""
        del cache
        repeat = repeat_final_dataset is None or repeat_final_dataset
        batches = self._numpy_batches(data_rng, split, data_dir, global_batch_size, repeat)
        if num_batches is not None:
            batches = itertools.islice(batches, num_batches)
        return map(self._to_framework_batch, batches)

    # Evaluation.

    @abc.abstractmethod
    def _eval_outputs(self, params: spec.ParameterContainer, batch: dict[str, Any],
                      model_state: spec.ModelAuxiliaryState) -> tuple[np.ndarray, ...]:
        """Logits, targets and weights of one eval batch as numpy, of every process."""

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
        """Accuracy, loss and mAP over one whole pass of ``split`` (its batches cached)."""
        del num_examples, rng, global_step
        key = (split, global_batch_size)
        if key not in self._eval_iters:
            self._eval_iters[key] = list(self._build_input_queue(
                None, split, data_dir, global_batch_size, repeat_final_dataset=False))
        outputs = [self._eval_outputs(params, batch, model_state)
                   for batch in self._eval_iters[key]]
        logits, labels, weights = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
        return metrics.eval_metrics(logits, labels, weights)
