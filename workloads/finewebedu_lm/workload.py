"""The finewebedu_lm workload, framework-free part: constants, sizes, the token windows, eval.

AlgoPerf's ``finewebedu_lm`` (its ``LmWorkload``, A100 weight class): next-token prediction
on FineWeb-Edu (``sample-10BT``) tokenised with GPT-2's BPE. The prepared data is one token
stream per split on disk (``algoperf.datasets.finewebedu``), memory-mapped; the stream is cut
into windows of ``sequence_length + 1`` tokens (the remainder dropped), ``inputs`` the first
``sequence_length`` tokens of a window and ``targets`` the last (shifted by one), as
AlgoPerf's pipeline cuts its flattened stream. A batch is a gather of whole windows from the
memory map, so the pipeline never tokenises during training.

Model (both frameworks; ``models.py``): 12 pre-RMSNorm blocks of width 1024, 8 heads of 128
with rotary positions (theta 500,000, interleaved pairs) and QK-norm (q and k divided by
their L2 norm plus 1e-6, q then multiplied by a learned scalar ``attn_scale`` initialised to
log2(1024^2 - 1024)), causal softmax attention at scale 1, a GLU MLP (1024 -> 8192, the first
half gated by the sigmoid of the second, -> 1024), a final RMSNorm and logits from the tied
token embedding (50,257 x 1024); no biases, no dropout; 252,815,372 parameters.

As in charlm, next-token prediction is classification at every position: ``targets`` and
``weights`` are flattened to (B * T,), ``model_fn`` returns logits (B * T, 50257). Metrics per
split: ``loss``, the mean cross-entropy per token (summed loss over summed weights, as
AlgoPerf's), and ``ppl = exp(loss)``, the target metric. There is no test split.

``sequence_length`` is a reduced setting: the CPU test suites cut windows of 8 tokens. The
model's parameters do not depend on it (rotary positions have none; ``attn_scale`` starts from
the model's context of 1024 whatever the windows).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from algoperf import spec
from algoperf.datasets import finewebedu
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification import ImageClassificationWorkload
from algoperf.workloads.common.perplexity import perplexity

VOCAB_SIZE = finewebedu.VOCAB_SIZE
CONTEXT_LENGTH = 1024  # the model's context: AlgoPerf's seq_len
WIDTH = 1024
NUM_HEADS = 8
NUM_LAYERS = 12
MLP_WIDTH = 4096  # the GLU's gated width; its first layer is twice as wide
RMS_NORM_EPSILON = 1e-6
QK_NORM_EPSILON = 1e-6
ROPE_THETA = 500_000.0
INIT_STDDEV = 0.02
# Residual output projections (attention out, MLP fc2) start smaller, by sqrt(2 * layers).
RESIDUAL_INIT_STDDEV = INIT_STDDEV / math.sqrt(2 * NUM_LAYERS)
# QK-norm makes q.k a cosine; the learned scale starts at log2(L^2 - L) of the full context.
ATTN_SCALE_INIT = math.log2(CONTEXT_LENGTH ** 2 - CONTEXT_LENGTH)
NUM_EVAL_TRAIN = 10_000


class BaseLmWorkload(ImageClassificationWorkload):
    """finewebedu_lm, framework-free: the JAX and PyTorch ``LmWorkload`` classes build on it."""

    workload_name = "finewebedu_lm"
    num_classes = VOCAB_SIZE
    sequence_length = CONTEXT_LENGTH
    official_split_sizes = finewebedu.OFFICIAL_WINDOWS
    reduced_settings: ClassVar[dict[str, Any]] = {"sequence_length": 8}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not 0 < self.sequence_length <= CONTEXT_LENGTH:
            raise UserError(f"finewebedu_lm's sequence_length must be 1 to {CONTEXT_LENGTH}, "
                            f"got {self.sequence_length}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.sequence_length,)

    # Sizes: windows of the prepared streams (AlgoPerf's constants until the data is read).

    @property
    def num_eval_train_examples(self) -> int:
        return min(NUM_EVAL_TRAIN, self.num_train_examples)

    @property
    def num_test_examples(self) -> None:
        return None  # AlgoPerf: 0; no test split, no test target

    @property
    def eval_batch_size(self) -> int:
        return 256

    @property
    def train_mean(self) -> float:
        raise NotImplementedError("finewebedu_lm's inputs are tokens; they are not normalised")

    @property
    def train_stddev(self) -> float:
        raise NotImplementedError("finewebedu_lm's inputs are tokens; they are not normalised")

    # Data.

    def _directory(self, data_dir: str | None) -> str:
        if data_dir is None:
            raise UserError("finewebedu_lm needs --data-dir with FineWeb-Edu prepared in it "
                            "(algoperf datasets download finewebedu)")
        return f"{data_dir}/{finewebedu.NAME}"

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        directory = self._directory(data_dir)
        inputs, targets = finewebedu.windows(finewebedu.tokens(directory, split),
                                             self.sequence_length)
        self._read_split_sizes(data_dir)
        return {"inputs": inputs, "targets": targets}

    def _prepared_split_sizes(self, data_dir: str | None) -> dict[str, int]:
        directory = self._directory(data_dir)
        return {name: finewebedu.num_windows(directory, name, self.sequence_length)
                for name in finewebedu.SPLITS}

    @staticmethod
    def per_position(batch: pipeline.Batch) -> pipeline.Batch:
        """A numpy batch of windows with ``targets`` (B, T) and window ``weights`` (B,) as one
        row per position: (B * T,) each; inputs as int32 (B, T)."""
        length = batch["targets"].shape[1]
        return {"inputs": batch["inputs"].astype(np.int32),
                "targets": batch["targets"].reshape(-1).astype(np.int32),
                "weights": np.repeat(batch["weights"], length)}

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
        """Mean cross-entropy per token and its perplexity on ``num_examples`` windows of
        ``split``: the base's per-window sums divided by the tokens of a window."""
        sums = super()._eval_model_on_split(split, num_examples, global_batch_size, params,
                                            model_state, rng, data_dir, global_step)
        loss = sums["loss"] / self.sequence_length
        return {"loss": loss, "ppl": perplexity(loss)}
