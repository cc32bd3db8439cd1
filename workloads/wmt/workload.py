"""The wmt workload, framework-free part: constants, sizes, batches and the evaluation.

AlgoPerf's ``wmt``: German-to-English translation on WMT17 (train) and WMT14 (validation:
newstest2013, test: newstest2014), SentencePiece ids (``algoperf.datasets.wmt``), scored on
corpus BLEU of beam-searched translations (``decode``, ``metrics``).

Model (both frameworks; ``models.py``): the Transformer-big-like encoder-decoder of flax's
WMT example at AlgoPerf's sizes: a token embedding of 32,000 x 1,024 shared by the encoder,
the decoder and the output (logits = decoder output . embedding^T / sqrt(1024)), fixed
sinusoidal positions for 256 positions, 6 encoder and 6 decoder blocks of 16 heads of 64 (no
attention biases) and a 1,024 -> 1,024 -> 1,024 MLP, pre-LayerNorm with a final LayerNorm
per stack, dropout 0.1; 133,521,408 parameters. Variants: ``pre_ln=False`` (post-LN, no
final norms: 133,517,312), ``attention_temp=4.0`` (queries' inputs scaled by 4) and
``glu=True, activation='tanh'`` (MLP tanh(W0 x) * (W1 x): 146,116,608).

Batches (numpy; ``input_pipeline``): training rows are packed pairs of 256 tokens per side
with their positions and segment ids; eval rows are single pairs padded to 256. Next-token
prediction is classification at every target position, so -- as finewebedu_lm -- ``targets``
and ``weights`` are flattened to (B * 256,) and ``model_fn`` returns logits (B * 256, 32000);
``inputs`` and the position and segmentation arrays stay (B, 256). Training weights are
AlgoPerf's ``targets > 0`` (padding tokens count for nothing). Eval batches' weights mark
the padding examples of a padded last batch (1 real, 0 padding, per position, as every
workload's eval batches); the eval step multiplies them by ``targets > 0``, the mask
AlgoPerf's eval batches carry.

Metrics per split, as AlgoPerf's: ``loss`` (cross-entropy without label smoothing) and
``accuracy`` summed over target tokens and divided by their number, and ``bleu``.

``sequence_length`` (the pack length, the eval padding and the length filter) and
``max_predict_length`` (the decoding limit) are reduced settings: the CPU test suites use 16.
The model's parameters do not depend on them (the positional table always has 256 rows).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from algoperf import spec
from algoperf.datasets import wmt as wmt_data
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification import ImageClassificationWorkload
from algoperf.workloads.wmt import decode, input_pipeline, metrics

VOCAB_SIZE = wmt_data.VOCAB_SIZE
WIDTH = 1024
NUM_HEADS = 16
NUM_LAYERS = 6
MLP_WIDTH = 1024
MAX_LENGTH = 256  # AlgoPerf's max_len: positions, packs, eval padding, the length filter
DROPOUT_RATE = 0.1
LAYER_NORM_EPSILON = 1e-6
ACTIVATIONS = ("relu", "tanh")


class BaseWmtWorkload(ImageClassificationWorkload):
    """wmt, framework-free: the JAX and PyTorch ``WmtWorkload`` classes build on it."""

    workload_name = "wmt"
    official_split_sizes = wmt_data.OFFICIAL_SENTENCES
    num_classes = VOCAB_SIZE
    variant_settings: ClassVar[tuple[str, ...]] = ("pre_ln", "attention_temp", "glu",
                                                   "activation")
    pre_ln = True
    attention_temp = 1.0
    glu = False
    activation = "relu"
    sequence_length = MAX_LENGTH
    max_predict_length = MAX_LENGTH
    reduced_settings: ClassVar[dict[str, Any]] = {"sequence_length": 16,
                                                  "max_predict_length": 16}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.activation not in ACTIVATIONS:
            raise UserError(f"wmt's activation must be one of {', '.join(ACTIVATIONS)}, got "
                            f"{self.activation!r}")
        for name in ("sequence_length", "max_predict_length"):
            if not 1 < getattr(self, name) <= MAX_LENGTH:
                raise UserError(f"wmt's {name} must be 2 to {MAX_LENGTH}, got "
                                f"{getattr(self, name)}")
        self._kept: dict[tuple[str, str | None], np.ndarray] = {}
        self._tokenizer = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.sequence_length,)

    # Sizes: pairs left after the length filter (AlgoPerf's constants until data is read).

    @property
    def num_eval_train_examples(self) -> int:
        # AlgoPerf: the validation size rounded up to whole eval batches.
        rounded = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return min(rounded * self.eval_batch_size, self.num_train_examples)

    @property
    def eval_batch_size(self) -> int:
        return 128

    @property
    def train_mean(self) -> float:
        raise NotImplementedError("wmt's inputs are tokens; they are not normalised")

    @property
    def train_stddev(self) -> float:
        raise NotImplementedError("wmt's inputs are tokens; they are not normalised")

    # Data.

    def _directory(self, data_dir: str | None) -> str:
        if data_dir is None:
            raise UserError("wmt needs --data-dir with WMT prepared in it "
                            "(algoperf datasets download wmt)")
        return f"{data_dir}/{wmt_data.NAME}"

    def _kept_pairs(self, split: str, data_dir: str | None) -> tuple[Any, Any, np.ndarray]:
        """Both sides of a stored split and the pairs the length filter keeps."""
        directory = self._directory(data_dir)
        inputs, targets = (wmt_data.read_side(directory, split, side)
                           for side in wmt_data.SIDES)
        if (split, data_dir) not in self._kept:
            self._kept[split, data_dir] = input_pipeline.kept_pairs(inputs, targets,
                                                                    self.sequence_length)
        return inputs, targets, self._kept[split, data_dir]

    def _prepared_split_sizes(self, data_dir: str | None) -> dict[str, int]:
        sizes = {}
        for name in wmt_data.SPLITS:
            sizes[name] = len(self._kept_pairs(name, data_dir)[2])
            if sizes[name] == 0:
                raise UserError(f"no WMT {name} pair has at most {self.sequence_length} "
                                "tokens per side; prepare more data")
        return sizes

    def _read_split_sizes(self, data_dir: str | None) -> None:
        """The split sizes (they follow the prepared data and the length filter), and the
        tokenizer that the evals decode translations with."""
        super()._read_split_sizes(data_dir)
        if self._tokenizer is None:
            self._tokenizer = wmt_data.load_tokenizer(self._directory(data_dir))

    def _sides(self, split: str, data_dir: str | None) -> tuple[Any, Any, np.ndarray]:
        """``_kept_pairs`` once the split sizes and the tokenizer are read."""
        self._read_split_sizes(data_dir)
        return self._kept_pairs(split, data_dir)

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        """An eval split's pairs, zero-padded to ``sequence_length``; 'train' is the
        training split's first filtered pairs (its eval_train prefix)."""
        inputs, targets, kept = self._sides(split, data_dir)
        if split == "train":
            kept = kept[:self.num_eval_train_examples]
        return {"inputs": input_pipeline.padded(inputs, kept, self.sequence_length),
                "targets": input_pipeline.padded(targets, kept, self.sequence_length)}

    @staticmethod
    def per_position(batch: pipeline.Batch) -> pipeline.Batch:
        """A numpy batch with targets (B, T) as one row per position: targets and weights
        (B * T,); training weights are ``targets > 0``, eval weights (B,) are repeated per
        position. Token arrays as int32."""
        targets = batch["targets"]
        if "weights" in batch:
            weights = np.repeat(batch["weights"], targets.shape[1])
        else:
            weights = (targets > 0).reshape(-1).astype(np.float32)
        out = {key: value.astype(np.int32) for key, value in batch.items()
               if key not in ("targets", "weights")}
        out["targets"] = targets.reshape(-1).astype(np.int32)
        out["weights"] = weights.astype(np.float32)
        return out

    def _build_input_queue(self, data_rng, split, data_dir, global_batch_size, cache=None,
                           repeat_final_dataset=None, num_batches=None):
        """Packed training batches, shuffled by ``data_rng``; ordered, padded eval batches
        (repeated unless ``repeat_final_dataset`` is False). The frameworks'
        ``_to_framework_batch`` lays both out per position (``per_position``)."""
        if split != "train":
            return super()._build_input_queue(data_rng, split, data_dir, global_batch_size,
                                              cache, repeat_final_dataset, num_batches)
        inputs, targets, kept = self._sides(split, data_dir)
        if global_batch_size <= 0:
            raise UserError(f"training batch size must be positive, got {global_batch_size}")
        batches = input_pipeline.train_batches(inputs, targets, kept, global_batch_size,
                                               pipeline.seed_from_rng(data_rng),
                                               self.sequence_length)
        if num_batches is not None:
            batches = (batch for _, batch in zip(range(num_batches), batches, strict=False))
        return map(self._to_framework_batch, batches)

    # Evaluation.

    def _translate(self, params: spec.ParameterContainer,
                   batch: dict[str, spec.Tensor]) -> np.ndarray:
        """Beam-searched translations of the batch's inputs: (B, max_predict_length - 1)."""
        raise NotImplementedError

    def _detokenize(self, ids: np.ndarray) -> str:
        """The text of ``ids`` up to the first ``</s>``. Ids the tokeniser does not have
        (only a synthetic tokeniser is smaller than the model's 32,000) read as ``<unk>``."""
        ids = decode.until_eos(ids)
        ids[ids >= self._tokenizer.get_piece_size()] = wmt_data.PAD_ID
        return self._tokenizer.decode(ids.tolist())

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
        """Per-token loss and accuracy, and corpus BLEU of the beam-searched translations of
        the split's real (unpadded) pairs against their references."""
        del rng, global_step, model_state
        if split not in self._eval_iters:
            self._eval_iters[split] = self._build_input_queue(
                None, split, data_dir, global_batch_size, cache=True, repeat_final_dataset=True)
        totals: dict[str, Any] = {"accuracy": 0.0, "loss": 0.0, "denominator": 0.0,
                                  "bleu": np.zeros(10, np.int64)}
        for _ in range(math.ceil(num_examples / global_batch_size)):
            batch = next(self._eval_iters[split])
            sums = self._eval_batch_metrics(params, batch, None)
            for name in ("accuracy", "loss", "denominator"):
                totals[name] = totals[name] + sums[name]
            totals["bleu"] = totals["bleu"] + self._bleu_statistics(params, batch)
        totals = self._sum_across_processes(totals)
        denominator = float(totals["denominator"])
        return {"accuracy": float(totals["accuracy"]) / denominator,
                "loss": float(totals["loss"]) / denominator,
                "bleu": metrics.score_from_statistics(np.asarray(totals["bleu"]))}

    def _bleu_statistics(self, params: spec.ParameterContainer,
                         batch: dict[str, spec.Tensor]) -> np.ndarray:
        predicted = self._translate(params, batch)
        targets = np.asarray(self._to_numpy(batch["targets"])).reshape(len(predicted), -1)
        real = np.asarray(self._to_numpy(batch["weights"])).reshape(len(predicted), -1)[:, 0]
        rows = np.flatnonzero(real > 0)
        return metrics.statistics([self._detokenize(predicted[row]) for row in rows],
                                  [self._detokenize(targets[row]) for row in rows])

    @staticmethod
    def _to_numpy(x: Any) -> np.ndarray:
        return np.asarray(x)
