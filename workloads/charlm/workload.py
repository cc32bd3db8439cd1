"""The charlm development workload, framework-free part: sizes, constants and the model's shape.

Data: the pydoc topics of CPython 3.11.7 (``algoperf.datasets.python_docs``, pinned by sha256):
sequences of 32 bytes, train 14,283 / validation 143 / test 143, each target the input shifted
by one byte. Model: a decoder-only pre-LayerNorm Transformer (``NUM_LAYERS`` blocks of causal
multi-head self-attention and a GELU MLP, learned position embeddings, an untied output layer)
over a 256-byte vocabulary. Metrics per split: next-byte ``accuracy``, mean cross-entropy
``loss`` per byte (nats) and ``ppl = exp(loss)``, the target metric (as AlgoPerf's language
model). Targets, budget, eval period and step hint come from the registry row.

Next-byte prediction is classification at every position, so the workload is the in-memory
classification base with one output row per position: a batch's ``targets`` and ``weights``
are flattened to (B * T,) (``per_position``), ``model_fn`` returns logits (B * T, 256), and the
base's loss (``per_example``: one entry per position) and eval step apply as they are.
"""

from __future__ import annotations

import numpy as np

from algoperf import spec
from algoperf.datasets import python_docs
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.classification import ImageClassificationWorkload
from algoperf.workloads.common.perplexity import perplexity

VOCAB_SIZE = python_docs.VOCAB_SIZE
SEQUENCE_LENGTH = python_docs.SEQUENCE_LENGTH
WIDTH = 32
NUM_HEADS = 4
NUM_LAYERS = 2
MLP_WIDTH = 4 * WIDTH
LAYER_NORM_EPSILON = 1e-6  # flax's default, set explicitly in PyTorch
POSITION_INIT_STDDEV = 0.02


class BaseCharLmWorkload(ImageClassificationWorkload):
    """charlm, framework-free: the JAX and PyTorch ``CharLmWorkload`` classes build on it."""

    workload_name = "charlm"
    num_classes = VOCAB_SIZE
    input_shape = (SEQUENCE_LENGTH,)

    @property
    def num_train_examples(self) -> int:
        return python_docs.split_sizes()["train"]

    @property
    def num_validation_examples(self) -> int:
        return python_docs.split_sizes()["validation"]

    @property
    def num_test_examples(self) -> int:
        return python_docs.split_sizes()["test"]

    @property
    def eval_batch_size(self) -> int:
        return 150  # more than any eval split: one padded batch per evaluation

    @property
    def train_mean(self) -> float:
        raise NotImplementedError("charlm's inputs are bytes; they are not normalised")

    @property
    def train_stddev(self) -> float:
        raise NotImplementedError("charlm's inputs are bytes; they are not normalised")

    def _load_split(self, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
        return python_docs.load_split(split, data_dir)

    @staticmethod
    def per_position(batch: pipeline.Batch) -> pipeline.Batch:
        """A numpy batch of sequences with its ``targets`` (B, T) and sequence ``weights``
        (B,) as one row per position: (B * T,) each."""
        length = batch["targets"].shape[1]
        return {**batch, "targets": batch["targets"].reshape(-1),
                "weights": np.repeat(batch["weights"], length)}

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
        """Next-byte accuracy, mean loss per byte and its perplexity on ``split``: the base's
        sums over positions per sequence, divided by the positions of a sequence."""
        sums = super()._eval_model_on_split(split, num_examples, global_batch_size, params,
                                            model_state, rng, data_dir, global_step)
        metrics = {name: value / SEQUENCE_LENGTH for name, value in sums.items()}
        return {**metrics, "ppl": perplexity(metrics["loss"])}
