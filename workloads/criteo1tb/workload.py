"""The criteo1tb workload, framework-free part: sizes, the variant settings, input queues, eval.

AlgoPerf's ``criteo1tb``: DLRM-small predicting clicks on the Criteo 1TB logs, scored on the
mean sigmoid cross-entropy (``loss``, lower is better); targets and budget in the registry
row. Data: the TSV files ``algoperf datasets prepare criteo1tb`` lays out in
``<data_dir>/criteo1tb/``, streamed by ``input_pipeline``. A batch is ``{'inputs': (N, 39),
'targets': (N, 1), 'weights': (N,)}`` float32; the targets have the logits' shape (AlgoPerf's
are (N,); its ``loss_fn`` flattens both, as this one does).

Evaluation as AlgoPerf's: each split's batches come from a cached, repeating stream, an eval
takes ``ceil(n / b)`` of them (so every example once, the last batch padded with weight 0),
and ``loss`` is the weighted sum of the per-example losses divided by ``n``. One difference:
'eval_train' is a fixed set, the first ``num_eval_train_examples`` lines of the training
files in a fixed order (AlgoPerf's is a shuffled stretch of the training stream, different at
every evaluation). The eval batch size is AlgoPerf's per framework: 131,072 in JAX, 8,192 in
PyTorch, so ``num_eval_train_examples`` (validation's size rounded up to a whole batch) is
83,361,792 and 83,279,872.

Split sizes follow the prepared data's ``meta.json``: the official files give 4,195,197,692 /
83,274,637 / 95,000,000.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from algoperf import spec
from algoperf.datasets import criteo1tb as criteo_data
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.registered import RegisteredWorkload
from algoperf.workloads.criteo1tb import input_pipeline

DROPOUT_RATE = 0.0
SPLITS = ("train", "eval_train", "validation", "test")


class BaseCriteo1TbDlrmSmallWorkload(RegisteredWorkload):
    """Criteo 1TB with DLRM-small, framework-free: the JAX and PyTorch
    ``Criteo1TbDlrmSmallWorkload`` classes build on it."""

    workload_name = "criteo1tb"
    variant_settings = ("vocab_size", "use_layer_norm", "use_resnet",
                        "embedding_init_multiplier", "mlp_bottom_dims", "mlp_top_dims")
    vocab_size = 32 * 128 * 1024  # 4,194,304 rows of the one table
    use_layer_norm = False
    use_resnet = False
    embedding_init_multiplier: float | None = None  # None: 1 / sqrt(vocab_size)
    mlp_bottom_dims: tuple[int, ...] = (512, 256, 128)
    mlp_top_dims: tuple[int, ...] = (1024, 1024, 512, 256, 1)
    embed_dim = 128
    num_dense_features = input_pipeline.NUM_DENSE
    official_split_sizes = criteo_data.OFFICIAL_COUNTS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mlp_bottom_dims = tuple(self.mlp_bottom_dims)
        self.mlp_top_dims = tuple(self.mlp_top_dims)

    # Sizes.

    @property
    def num_eval_train_examples(self) -> int:
        rounded = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return min(rounded * self.eval_batch_size, self.num_train_examples)

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SIGMOID_CROSS_ENTROPY

    @property
    def train_mean(self):
        raise NotImplementedError("criteo1tb's counts are log-scaled, not normalised")

    @property
    def train_stddev(self):
        raise NotImplementedError("criteo1tb's counts are log-scaled, not normalised")

    # Data.

    def _directory(self, data_dir: str | None) -> Path:
        if data_dir is None:
            raise UserError("criteo1tb needs --data-dir with Criteo 1TB prepared in it")
        return Path(data_dir) / criteo_data.NAME

    def _prepared_split_sizes(self, data_dir: str | None) -> dict[str, int]:
        return criteo_data.counts(self._directory(data_dir))

    @abc.abstractmethod
    def _to_framework_batch(self, batch: pipeline.Batch) -> dict[str, spec.Tensor]:
        """One numpy batch as the framework's tensors (this process's rows)."""

    def _numpy_batches(self, data_rng: spec.RandomState | None, split: str,
                       data_dir: str | None, global_batch_size: int,
                       repeat: bool) -> Iterator[pipeline.Batch]:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
        self._read_split_sizes(data_dir)
        directory = self._directory(data_dir)
        if split == "train":
            return input_pipeline.TrainBatches(criteo_data.split_files(directory, "train"),
                                               global_batch_size,
                                               pipeline.seed_from_rng(data_rng))
        if split == "eval_train":
            files = input_pipeline.eval_train_files(criteo_data.split_files(directory, "train"))
            return input_pipeline.eval_batches(files, global_batch_size, repeat,
                                               limit=self.num_eval_train_examples)
        return input_pipeline.eval_batches(criteo_data.split_files(directory, split),
                                           global_batch_size, repeat)

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
        """The endless training stream (file order seeded by ``data_rng``); the eval splits
        in order, padded, repeated unless ``repeat_final_dataset`` is False."""
        del cache
        repeat = repeat_final_dataset is None or repeat_final_dataset
        batches = self._numpy_batches(data_rng, split, data_dir, global_batch_size, repeat)
        if num_batches is not None:
            batches = itertools.islice(batches, num_batches)
        return map(self._to_framework_batch, batches)

    # Evaluation.

    @abc.abstractmethod
    def _eval_batch_loss(self, params: spec.ParameterContainer,
                         batch: dict[str, spec.Tensor]) -> Any:
        """The weighted sum of the per-example losses of one eval batch."""

    def _sum_across_processes(self, total: Any) -> Any:
        return total

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
        """The mean loss over ``num_examples`` of ``split``."""
        del model_state, rng, global_step
        if num_examples == 0:
            raise UserError(f"the prepared Criteo 1TB in {data_dir} has no {split} examples; "
                            "prepare it again with: algoperf datasets prepare criteo1tb --force")
        key = (split, global_batch_size)
        if key not in self._eval_iters:
            self._eval_iters[key] = self._build_input_queue(
                None, split, data_dir, global_batch_size, repeat_final_dataset=True)
        total: Any = 0.0
        for _ in range(input_pipeline.num_batches(num_examples, global_batch_size)):
            total = total + self._eval_batch_loss(params, next(self._eval_iters[key]))
        return {"loss": float(self._sum_across_processes(total)) / num_examples}
