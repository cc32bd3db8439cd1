"""The fastmri workload, framework-free part: sizes, the variant settings, input queues, eval.

AlgoPerf's ``fastmri``: a U-Net reconstructing 4x-undersampled single-coil knee slices,
scored on SSIM; targets and budget in the registry row. Data: the volumes ``algoperf
datasets prepare fastmri`` lays out in ``<data_dir>/fastmri/``, one example per slice
(``input_pipeline``). A batch is ``{'inputs', 'targets': (N, 320, 320), 'mean', 'std',
'volume_max', 'weights': (N,)}``.

Evaluation as AlgoPerf's: each eval split is processed once and kept in memory (AlgoPerf
caches it too), walked in order in batches padded with weight 0, and ``ssim`` and ``loss``
are the weighted sums over the split divided by its number of examples. One difference:
'eval_train' is a fixed seeded sample of the training slices (AlgoPerf's is a shuffled
stretch of the training files), so every evaluation scores the same slices.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from algoperf import spec
from algoperf.datasets import fastmri as fastmri_data
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.registered import RegisteredWorkload
from algoperf.workloads.fastmri import input_pipeline

DROPOUT_RATE = 0.0
SPLITS = ("train", "eval_train", "validation", "test")


class BaseFastMRIWorkload(RegisteredWorkload):
    """fastMRI knee single-coil, framework-free: the JAX and PyTorch ``FastMRIWorkload``
    classes build on it."""

    workload_name = "fastmri"
    variant_settings = ("num_pool_layers", "num_channels", "use_tanh", "use_layer_norm")
    num_pool_layers = 4
    num_channels = 32
    use_tanh = False
    use_layer_norm = False
    center_fractions = (0.08,)
    accelerations = (4,)
    official_split_sizes = fastmri_data.OFFICIAL_COUNTS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._eval_arrays: dict[tuple[str, str], pipeline.Batch] = {}

    # Sizes.

    @property
    def num_eval_train_examples(self) -> int:
        rounded = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return min(rounded * self.eval_batch_size, self.num_train_examples)

    @property
    def eval_batch_size(self) -> int:
        return 256

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.MEAN_ABSOLUTE_ERROR

    @property
    def train_mean(self):
        raise NotImplementedError("fastmri normalises each slice by its own statistics")

    @property
    def train_stddev(self):
        raise NotImplementedError("fastmri normalises each slice by its own statistics")

    # Data.

    def _directory(self, data_dir: str | None) -> Path:
        if data_dir is None:
            raise UserError("fastmri needs --data-dir with fastMRI prepared in it")
        return Path(data_dir) / fastmri_data.NAME

    def _prepared_split_sizes(self, data_dir: str | None) -> dict[str, int]:
        volumes = fastmri_data.volumes(self._directory(data_dir))
        return {split: sum(slices.values()) for split, slices in volumes.items()}

    def _split_arrays(self, split: str, data_dir: str | None) -> pipeline.Batch:
        """The processed examples of an eval split, made once."""
        if (split, data_dir) not in self._eval_arrays:
            self._read_split_sizes(data_dir)
            slices = input_pipeline.Slices(self._directory(data_dir), split)
            if split == "eval_train":
                sample = np.random.RandomState(0).permutation(len(slices))
                positions = np.sort(sample[:self.num_eval_train_examples])
                arrays = input_pipeline.eval_arrays(slices, positions, seed=0)
            else:
                arrays = input_pipeline.eval_arrays(slices)
            self._eval_arrays[split, data_dir] = arrays
        return self._eval_arrays[split, data_dir]

    @abc.abstractmethod
    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        """One numpy batch as the framework's tensors."""

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
        """Endless shuffled training batches (masks and order seeded by ``data_rng``); the
        eval splits in order, padded, repeated unless ``repeat_final_dataset`` is False."""
        del cache
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        if split == "train":
            self._read_split_sizes(data_dir)
            slices = input_pipeline.Slices(self._directory(data_dir), split)
            if not 0 < global_batch_size <= len(slices):
                raise UserError(f"training batch size {global_batch_size} must be between 1 "
                                f"and the {len(slices)} training slices")
            batches = input_pipeline.train_batches(slices, global_batch_size,
                                                   pipeline.seed_from_rng(data_rng))
        else:
            repeat = repeat_final_dataset is None or repeat_final_dataset
            batches = pipeline.eval_batches(self._split_arrays(split, data_dir),
                                            global_batch_size, repeat=repeat)
        if num_batches is not None:
            batches = itertools.islice(batches, num_batches)
        return map(self._to_framework_batch, batches)

    # Evaluation.

    @abc.abstractmethod
    def _eval_batch_metrics(self, params: spec.ParameterContainer,
                            batch: dict[str, spec.Tensor]) -> dict[str, spec.Tensor]:
        """Weighted sums over one eval batch: ``{'ssim': ..., 'loss': ...}``."""

    def _sum_across_processes(self, totals: dict[str, Any]) -> dict[str, Any]:
        return totals

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
        """SSIM and mean loss over ``num_examples`` of ``split``."""
        del model_state, rng, global_step
        if split not in self._eval_iters:
            self._eval_iters[split] = self._build_input_queue(
                None, split, data_dir, global_batch_size, repeat_final_dataset=True)
        totals: dict[str, Any] = {"ssim": 0.0, "loss": 0.0}
        for _ in range(math.ceil(num_examples / global_batch_size)):
            metrics = self._eval_batch_metrics(params, next(self._eval_iters[split]))
            totals = {name: total + metrics[name] for name, total in totals.items()}
        totals = self._sum_across_processes(totals)
        return {name: float(total) / num_examples for name, total in totals.items()}
