"""The LibriSpeech Conformer workload, framework-free part: sizes, settings, input queues and
the evaluation (CTC loss per target token and corpus WER).

AlgoPerf's ``librispeech_conformer``: a Conformer trained with CTC on LibriSpeech's 960 hours;
target and budget in the registry row. Data: the per-utterance layout
``algoperf.datasets.librispeech`` prepares in ``<data_dir>/librispeech/``, batched by
``input_pipeline``. The DeepSpeech workload builds on this class, as AlgoPerf's does.

Evaluation: 'eval_train' is the first ``num_eval_train_examples`` training utterances in the
index's order (AlgoPerf's JAX takes the first batches in its CSV order; its PyTorch a seeded
random subset), 'validation' dev-clean and dev-other, 'test' test-clean. Each split reports
``ctc_loss`` (summed CTC loss over the number of target tokens) and ``wer`` (``metrics``).

Split sizes follow the prepared data: the official archives give 263,840 / 5,348 / 2,472.
"""

from __future__ import annotations

import abc
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from algoperf import spec
from algoperf.datasets import librispeech as librispeech_data
from algoperf.errors import UserError
from algoperf.workloads.common import pipeline
from algoperf.workloads.common.registered import RegisteredWorkload
from algoperf.workloads.librispeech_conformer import input_pipeline, metrics


class BaseLibriSpeechConformerWorkload(RegisteredWorkload):
    """LibriSpeech with CTC, framework-free: the JAX and PyTorch workload classes build on it.

    ``audio_length`` is the padded audio length of every batch (AlgoPerf's 320,000 samples;
    synthetic data pads to its own longest utterance, ``_padded_length``); the CPU test
    suites shorten it (``reduced_settings``), which changes no parameter: the model's widths
    depend on the 80 mel bins only.
    """

    workload_name = "librispeech_conformer"
    variant_settings: ClassVar[tuple[str, ...]] = (
        "attention_temperature", "use_post_layer_norm", "use_gelu")
    reduced_settings: ClassVar[dict[str, Any]] = {"audio_length": 16_000}
    attention_temperature = 1.0
    use_post_layer_norm = True
    use_gelu = False
    audio_length = librispeech_data.MAX_AUDIO_SAMPLES
    vocab_size = librispeech_data.VOCAB_SIZE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids: dict[str, list[str]] = {}
        self._tokenizers: dict[str, Any] = {}
        self._eval_iters: dict[tuple[str, int], list[dict[str, Any]]] = {}

    # Sizes.

    def _split_size(self, split: str) -> int:
        """Utterances of ``split`` in the prepared index read so far (official before any)."""
        if split in self._ids:
            return len(self._ids[split])
        return librispeech_data.OFFICIAL_COUNTS[split]

    @property
    def num_eval_train_examples(self) -> int:
        rounded = math.ceil(self.num_validation_examples / self.eval_batch_size)
        return min(rounded * self.eval_batch_size, self.num_train_examples)

    @property
    def eval_batch_size(self) -> int:
        return 256

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.CTC_LOSS

    @property
    def train_mean(self):
        raise NotImplementedError("the model normalises its log-mel features itself")

    @property
    def train_stddev(self):
        raise NotImplementedError("the model normalises its log-mel features itself")

    # Data.

    def _directory(self, data_dir: str | None) -> Path:
        if data_dir is None:
            raise UserError(f"{self.workload_name} needs --data-dir with LibriSpeech prepared "
                            "in it (algoperf datasets prepare librispeech)")
        return Path(data_dir) / librispeech_data.NAME

    def _read_index(self, data_dir: str | None) -> None:
        if not self._ids:
            directory = self._directory(data_dir)
            self._ids = {split: librispeech_data.split_ids(directory, split)
                         for split in librispeech_data.SPLITS}

    def _split_ids(self, split: str, data_dir: str | None) -> tuple[str, list[str]]:
        """The stored split and the utterance ids of ``split``."""
        self._read_index(data_dir)
        if split == "eval_train":
            return "train", self._ids["train"][:self.num_eval_train_examples]
        return split, self._ids[split]

    def _padded_length(self, directory: Path) -> int:
        """``audio_length``, or for synthetic data (``write_synthetic``'s, a few seconds per
        utterance) its longest utterance if shorter: ``algoperf workloads check`` and short
        runs on synthetic data then step at that length, not at 20 s of padding."""
        if librispeech_data.is_synthetic(directory):
            return min(self.audio_length, librispeech_data.longest_utterance(directory))
        return self.audio_length

    @abc.abstractmethod
    def _to_framework_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
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
        """Endless shuffled training batches (seeded by ``data_rng``); the eval splits in
        order, the last batch padded, repeated unless ``repeat_final_dataset`` is False."""
        del cache
        stored, ids = self._split_ids(split, data_dir)
        directory = self._directory(data_dir)
        length = self._padded_length(directory)
        if split == "train":
            batches = input_pipeline.train_batches(directory, ids, global_batch_size,
                                                   pipeline.seed_from_rng(data_rng), length)
        else:
            repeat = repeat_final_dataset is None or repeat_final_dataset
            batches = input_pipeline.eval_batches(directory, stored, ids, global_batch_size,
                                                  length, repeat)
        if num_batches is not None:
            batches = itertools.islice(batches, num_batches)
        return map(self._to_framework_batch, batches)

    # Evaluation.

    @abc.abstractmethod
    def _eval_outputs(self, params: spec.ParameterContainer, batch: dict[str, Any],
                      model_state: spec.ModelAuxiliaryState
                      ) -> tuple[float, float, dict[str, np.ndarray]]:
        """(summed CTC loss, target tokens, arrays) of one eval batch with its padding rows
        masked; the arrays, numpy of every process, are the per-frame argmax ``frame_ids``,
        the ``logit_paddings``, the ``targets``, ``target_paddings`` and ``weights``."""

    def _read_split_sizes(self, data_dir: str | None) -> None:
        """Reads what the split sizes follow: the prepared data's index of utterances."""
        self._read_index(data_dir)

    def _tokenizer(self, data_dir: str | None):
        key = str(data_dir)
        if key not in self._tokenizers:
            self._tokenizers[key] = librispeech_data.load_tokenizer(self._directory(data_dir))
        return self._tokenizers[key]

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
        """``ctc_loss`` and ``wer`` over one whole pass of ``split`` (its batches cached)."""
        del num_examples, rng, global_step
        key = (split, global_batch_size)
        if key not in self._eval_iters:
            self._eval_iters[key] = list(self._build_input_queue(
                None, split, data_dir, global_batch_size, repeat_final_dataset=False))
        tokenizer = self._tokenizer(data_dir)
        loss = tokens = 0.0
        hypotheses, references = [], []
        for batch in self._eval_iters[key]:
            summed, count, arrays = self._eval_outputs(params, batch, model_state)
            loss, tokens = loss + summed, tokens + count
            real = arrays["weights"] > 0
            decoded = metrics.greedy_decode(arrays["frame_ids"][real],
                                            arrays["logit_paddings"][real])
            hypotheses += [tokenizer.decode(ids) for ids in decoded]
            references += [tokenizer.decode([int(i) for i in row[pad == 0]]) for row, pad in
                           zip(arrays["targets"][real], arrays["target_paddings"][real],
                               strict=True)]
        return {"ctc_loss": float(loss / max(tokens, 1.0)),
                "wer": float(metrics.corpus_wer(hypotheses, references))}
