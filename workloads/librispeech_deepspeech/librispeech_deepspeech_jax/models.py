"""The DeepSpeech of AlgoPerf's ``librispeech_deepspeech`` in flax linen: the Conformer's log-mel
front end and SpecAugment, two subsampling convolutions, 6 bidirectional LSTM layers and 3
feed-forward layers (each added residually), a layer norm and the CTC output layer.

The front end, SpecAugment, the subsampling convolution, the padding-aware batch norm and the
``1 + scale`` layer norm are the Conformer's modules (``librispeech_conformer_jax.models``),
configured by ``DeepspeechConfig``. Module and parameter names are AlgoPerf's
(``BatchRNN_<i>/LSTM_0/LSTM/LSTMSequenceEncoder_<d>/cell/hi/kernel``, ...): each LSTM direction
is a flax ``OptimizedLSTMCell`` scanned by ``nn.RNN`` over the real frames (the backward one
over each utterance's frames reversed in place).

Where AlgoPerf's definition is not a function of the real frames alone this one is: LSTM
outputs at padded frames are zeroed (AlgoPerf's JAX keeps what the cell computes there, its
PyTorch zeros them); no metric reads them. Dropout is ``dropout_rate`` at the subsampling output
and in every feed-forward layer (AlgoPerf's JAX leaves the residual feed-forward layers at a
fixed 0.1 whatever the rate; see docs/workloads.md).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf.workloads.common.dropout_jax import Dropout
from algoperf.workloads.librispeech_conformer.librispeech_conformer_jax.models import (
    BatchNorm,
    Conv2dSubsampling,
    LayerNorm,
    log_mel,
    spec_augment,
)

DROPOUT_RATE = 0.1
xavier = nn.initializers.xavier_uniform()


@dataclasses.dataclass(frozen=True)
class DeepspeechConfig:
    """The model's hyperparameters; the variants change ``use_tanh``,
    ``enable_residual_connections``, ``enable_decoder_layer_norm``, ``layernorm_everywhere``
    and the SpecAugment mask counts. The SpecAugment and batch-norm fields are the ones the
    Conformer's ``spec_augment`` and ``BatchNorm`` read."""

    vocab_size: int = 1024
    encoder_dim: int = 512
    num_lstm_layers: int = 6
    num_ffn_layers: int = 3
    freq_mask_count: int = 2
    freq_mask_max_bins: int = 27
    time_mask_count: int = 10
    time_mask_max_ratio: float = 0.05
    batch_norm_momentum: float = 0.999
    batch_norm_epsilon: float = 0.001
    use_specaug: bool = True
    enable_residual_connections: bool = True
    enable_decoder_layer_norm: bool = True
    use_tanh: bool = False
    layernorm_everywhere: bool = False

    def activation_fn(self, x: jax.Array) -> jax.Array:
        return jnp.tanh(x) if self.use_tanh else nn.relu(x)


class Subsample(nn.Module):
    """Two 3x3 stride-2 convolutions (time and frequency / 4), flattened, Dense to the model
    width, dropout; no position embedding."""

    config: DeepspeechConfig

    @nn.compact
    def __call__(self, x, paddings, train: bool, dropout_rate: float):
        c = self.config
        x = x[..., None]
        x, paddings = Conv2dSubsampling(1, c.encoder_dim, c.activation_fn)(x, paddings)
        x, paddings = Conv2dSubsampling(c.encoder_dim, c.encoder_dim, c.activation_fn)(
            x, paddings)
        batch, time, freq, channels = x.shape
        x = nn.Dense(c.encoder_dim, kernel_init=xavier)(x.reshape(batch, time, freq * channels))
        return Dropout()(x, dropout_rate, not train), paddings


def normalization(config: DeepspeechConfig, x: jax.Array, paddings: jax.Array,
                  update_batch_norm: bool, use_running_average: bool) -> jax.Array:
    """The padding-aware batch norm, or (``layernorm_everywhere``) a layer norm, as a
    submodule of the calling module (AlgoPerf's names ``BatchNorm_0`` / ``LayerNorm_0``)."""
    if config.layernorm_everywhere:
        return LayerNorm(config.encoder_dim)(x)
    return BatchNorm(config)(x, paddings, update_batch_norm, use_running_average)


class BidirectionalLSTM(nn.Module):
    """A forward and a backward ``OptimizedLSTMCell`` over each utterance's ``lengths`` real
    frames, outputs concatenated (batch, frames, 2 * hidden_size)."""

    hidden_size: int

    @nn.compact
    def __call__(self, x: jax.Array, lengths: jax.Array) -> jax.Array:
        def direction(index: int) -> nn.RNN:
            return nn.RNN(nn.OptimizedLSTMCell(self.hidden_size, parent=None),
                          name=f"LSTMSequenceEncoder_{index}")

        forward = direction(0)(x, seq_lengths=lengths)
        backward = direction(1)(x, seq_lengths=lengths, reverse=True, keep_order=True)
        return jnp.concatenate([forward, backward], axis=-1)


class LSTM(nn.Module):
    """Holds the ``BidirectionalLSTM`` under AlgoPerf's path ``LSTM_<i>/LSTM``."""

    hidden_size: int

    @nn.compact
    def __call__(self, x: jax.Array, lengths: jax.Array) -> jax.Array:
        return BidirectionalLSTM(self.hidden_size, name="LSTM")(x, lengths)


class BatchRNN(nn.Module):
    """Normalisation, then a bidirectional LSTM of half the model width per direction; outputs
    at padded frames zeroed."""

    config: DeepspeechConfig

    @nn.compact
    def __call__(self, x, paddings, update_batch_norm: bool, use_running_average: bool):
        c = self.config
        lengths = jnp.sum(1 - paddings, axis=-1).astype(jnp.int32)
        x = normalization(c, x, paddings, update_batch_norm, use_running_average)
        x = LSTM(c.encoder_dim // 2)(x, lengths)
        return x * (1 - paddings)[..., None]


class FeedForwardModule(nn.Module):
    """Normalisation, Dense, activation, mask, dropout."""

    config: DeepspeechConfig

    @nn.compact
    def __call__(self, x, paddings, train: bool, update_batch_norm: bool,
                 use_running_average: bool, dropout_rate: float):
        c = self.config
        x = normalization(c, x, paddings, update_batch_norm, use_running_average)
        x = c.activation_fn(nn.Dense(c.encoder_dim, kernel_init=xavier)(x))
        x = x * (1 - paddings)[..., None]
        return Dropout()(x, dropout_rate, not train)


class Deepspeech(nn.Module):
    """Audio (batch, samples) and paddings to CTC logits (batch, frames / 4, 1024) and their
    paddings: front end, SpecAugment (training, given ``specaug_key``), subsampling, the LSTM
    and feed-forward layers, layer norm (``enable_decoder_layer_norm``), Dense. The call
    signature is the Conformer's, so the Conformer workload's jitted programs apply it."""

    config: DeepspeechConfig

    @nn.compact
    def __call__(self, audio, paddings, train: bool, update_batch_norm: bool | None = None,
                 use_running_average_bn: bool | None = None,
                 dropout_rate: float = DROPOUT_RATE, specaug_key: jax.Array | None = None):
        c = self.config
        update = train if update_batch_norm is None else update_batch_norm
        running = not train if use_running_average_bn is None else use_running_average_bn
        x, paddings = log_mel(audio, paddings)
        if train and c.use_specaug and specaug_key is not None:
            x = spec_augment(c, x, paddings, specaug_key)
        x, paddings = Subsample(c)(x, paddings, train, dropout_rate)
        for _ in range(c.num_lstm_layers):
            y = BatchRNN(c)(x, paddings, update, running)
            x = x + y if c.enable_residual_connections else y
        for _ in range(c.num_ffn_layers):
            y = FeedForwardModule(c)(x, paddings, train, update, running, dropout_rate)
            x = x + y if c.enable_residual_connections else y
        if c.enable_decoder_layer_norm:
            x = LayerNorm(c.encoder_dim)(x)
        return nn.Dense(c.vocab_size, kernel_init=xavier)(x), paddings
