"""The Conformer of AlgoPerf's ``librispeech_conformer`` in flax linen, with the log-mel front
end and SpecAugment inside the model, as AlgoPerf has them.

Module and parameter names are AlgoPerf's (``Subsample_0/Conv2dSubsampling_0/kernel``,
``ConformerBlock_<i>/MultiHeadedSelfAttention_0/MultiHeadDotProductAttention_0/...``):
submissions key per-parameter choices on them. Layer norms and the padding-aware batch norm
scale by ``1 + scale`` with the scale initialised to 0 (lingvo's convention); every dense and
convolution kernel is xavier-uniform with zero biases.

Dropout follows AlgoPerf's JAX definition: one ``dropout_rate`` at the subsampling output, the
attention, convolution and feed-forward outputs, and the feed-forward hidden activation;
attention probabilities are not dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from algoperf.workloads.common.dropout_jax import Dropout
from algoperf.workloads.librispeech_conformer import frontend

DROPOUT_RATE = 0.1
xavier = nn.initializers.xavier_uniform()


@dataclasses.dataclass(frozen=True)
class ConformerConfig:
    """The model's hyperparameters; the variants change ``attention_temperature``,
    ``use_post_layer_norm`` and ``activation`` (``'gelu'``: flax's tanh approximation)."""

    vocab_size: int = 1024
    encoder_dim: int = 512
    num_attention_heads: int = 8
    num_encoder_layers: int = 4
    convolution_kernel_size: int = 5
    feed_forward_expansion_factor: int = 4
    freq_mask_count: int = 2
    freq_mask_max_bins: int = 27
    time_mask_count: int = 10
    time_mask_max_ratio: float = 0.05
    batch_norm_momentum: float = 0.999
    batch_norm_epsilon: float = 0.001
    use_specaug: bool = True
    attention_temperature: float = 1.0
    activation: str = "swish"
    use_post_layer_norm: bool = True

    def activation_fn(self, x: jax.Array) -> jax.Array:
        return nn.gelu(x, approximate=True) if self.activation == "gelu" else nn.swish(x)


def log_mel(audio: jax.Array, paddings: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Normalised log-mel features (batch, frames, 80) and frame paddings of int16-scale
    audio (batch, samples) with its paddings (``frontend`` describes the steps)."""
    indices = jnp.asarray(frontend.frame_indices(audio.shape[1]))
    audio = audio.astype(jnp.float32) * (1.0 - paddings) * frontend.INPUT_SCALE
    frames = audio[:, indices]  # (batch, frames, 401)
    frame_paddings = jnp.min(paddings[:, indices], axis=-1)
    emphasised = jnp.concatenate(
        [frames[..., :1] * (1.0 - frontend.PREEMPHASIS),
         frames[..., 1:-1] - frontend.PREEMPHASIS * frames[..., :-2]], axis=-1)
    windowed = emphasised * jnp.asarray(frontend.window())
    power = jnp.abs(jnp.fft.rfft(windowed, frontend.FFT_SIZE, axis=-1)) ** 2
    mel = jnp.einsum("btf,fn->btn", power, jnp.asarray(frontend.mel_weights()))
    features = jnp.log(jnp.maximum(mel, frontend.LOG_FLOOR))
    features = (features - frontend.LOG_MEL_MEAN) / frontend.LOG_MEL_STDDEV
    return features, frame_paddings


def spec_augment_mask(uniforms: tuple[jax.Array, jax.Array], choose_range: jax.Array,
                      max_length: jax.Array, mask_size: int, max_ratio: float) -> jax.Array:
    """SpecAugment's keep-mask (batch, mask_size) of ``multiplicity`` blocks per row, from two
    uniform draws (batch, multiplicity): each block's length is ``portion * max_length``
    (at most ``max_ratio`` of the row's range, at least... as lingvo) and its start uniform in
    the range; 1 keeps, 0 masks. Framework-neutral arithmetic shared in spirit with PyTorch."""
    portion, start_draw = uniforms
    size = (max_length[:, None] * portion).astype(jnp.int32)
    bound = (max_ratio * choose_range[:, None]).astype(jnp.int32)
    length = jnp.minimum(size, jnp.maximum(bound, 1))
    start = (start_draw * (choose_range[:, None] - length + 1)).astype(jnp.int32)
    end = start + length - 1
    position = jnp.arange(mask_size)[None, None, :]
    blocks = (position < end[..., None] + 0.1) & (position > start[..., None] - 0.1)
    return 1.0 - (blocks.sum(axis=1) > 0).astype(jnp.float32)


def spec_augment(config: ConformerConfig, features: jax.Array, paddings: jax.Array,
                 key: jax.Array) -> jax.Array:
    """SpecAugment (lingvo's, AlgoPerf's settings): ``time_mask_count`` time masks of at most
    ``time_mask_max_ratio`` of each utterance's length, then ``freq_mask_count`` frequency
    masks of at most ``freq_mask_max_bins`` bins. The four uniform draws (time lengths and
    starts, frequency lengths and starts) are ``jax.random.uniform`` of ``split(key, 4)``,
    which the PyTorch model reproduces bit for bit, so both frameworks mask alike."""
    c = config
    batch, time, bins = features.shape
    keys = jax.random.split(key, 4)
    lengths = jnp.sum(1 - paddings, axis=-1).astype(jnp.int32)
    if c.time_mask_count and c.time_mask_max_ratio > 0:
        draws = tuple(jax.random.uniform(k, (batch, c.time_mask_count)) for k in keys[:2])
        mask = spec_augment_mask(draws, lengths, lengths * c.time_mask_max_ratio, time,
                                 c.time_mask_max_ratio)
        features = features * mask[:, :, None]
    if c.freq_mask_count and c.freq_mask_max_bins:
        draws = tuple(jax.random.uniform(k, (batch, c.freq_mask_count)) for k in keys[2:])
        mask = spec_augment_mask(draws, jnp.full((batch,), bins),
                                 jnp.full((batch,), c.freq_mask_max_bins, jnp.float32), bins,
                                 1.0)
        features = features * mask[:, None, :]
    return features


class LayerNorm(nn.Module):
    """Layer norm scaling by ``1 + scale`` (scale initialised to 0), epsilon 1e-6."""

    dim: int
    epsilon: float = 1e-6

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.zeros, (self.dim,))
        bias = self.param("bias", nn.initializers.zeros, (self.dim,))
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * (1 + scale) + bias


class Conv2dSubsampling(nn.Module):
    """A 3x3 stride-2 'SAME' convolution with bias and ReLU (``activation``) whose paddings
    are subsampled alongside (every other frame), padded frames zeroed."""

    input_channels: int
    output_channels: int
    activation: Any = nn.relu

    @nn.compact
    def __call__(self, x: jax.Array, paddings: jax.Array) -> tuple[jax.Array, jax.Array]:
        kernel = self.param("kernel", xavier, (3, 3, self.input_channels, self.output_channels))
        bias = self.param("bias", nn.initializers.zeros, (self.output_channels,))
        x = jax.lax.conv_general_dilated(x, kernel, (2, 2), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC")) + bias
        x = self.activation(x)
        paddings = paddings[:, ::2]
        return x * (1.0 - paddings)[:, :, None, None], paddings


def sinusoidal_embedding(length: int, dim: int) -> np.ndarray:
    """(1, length, dim) sines then cosines of positions at timescales 1 to 10,000."""
    half = dim // 2
    increment = math.log(10_000.0) / max(half - 1, 1)
    inv_timescales = np.exp(np.arange(half, dtype=np.float32) * -increment).astype(np.float32)
    scaled = np.arange(length, dtype=np.float32)[None, :, None] * inv_timescales[None, None]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=-1).astype(np.float32)


class Subsample(nn.Module):
    """Two subsampling convolutions (time and frequency / 4), flattened, Dense to the model
    width, a sinusoidal position embedding, dropout."""

    encoder_dim: int

    @nn.compact
    def __call__(self, x, paddings, train: bool, dropout_rate: float):
        x = x[..., None]
        x, paddings = Conv2dSubsampling(1, self.encoder_dim)(x, paddings)
        x, paddings = Conv2dSubsampling(self.encoder_dim, self.encoder_dim)(x, paddings)
        batch, time, freq, channels = x.shape
        x = nn.Dense(self.encoder_dim, kernel_init=xavier)(
            x.reshape(batch, time, freq * channels))
        x = x + sinusoidal_embedding(time, self.encoder_dim)
        return Dropout()(x, dropout_rate, not train), paddings


class FeedForwardModule(nn.Module):
    """LN, Dense x4 width, activation, dropout, mask, Dense back, mask, dropout."""

    config: ConformerConfig

    @nn.compact
    def __call__(self, x, padding_mask, train: bool, dropout_rate: float):
        c = self.config
        x = LayerNorm(c.encoder_dim)(x)
        x = nn.Dense(c.encoder_dim * c.feed_forward_expansion_factor, kernel_init=xavier)(x)
        x = c.activation_fn(x)
        x = Dropout()(x, dropout_rate, not train) * padding_mask
        x = nn.Dense(c.encoder_dim, kernel_init=xavier)(x) * padding_mask
        return Dropout()(x, dropout_rate, not train)


class QueryScaler(nn.Module):
    """Scales each query dimension by ``softplus(scale) / softplus(0)`` (1 at init)."""

    dim: int

    @nn.compact
    def __call__(self, query: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.zeros, (self.dim,))
        return query * (1.442695041 * jax.nn.softplus(scale))


def _scaled_attention(query, key, value, *, mask=None, temperature: float = 1.0, **_):
    """flax's dot-product attention (1/sqrt(depth), masked logits at the float minimum) with
    the query scaled per dimension first and the output times ``temperature``."""
    query = QueryScaler(query.shape[-1])(query)
    weights = nn.attention.dot_product_attention_weights(query, key, mask=mask)
    return jnp.einsum("...hqk,...khd->...qhd", weights, value) * temperature


class MultiHeadedSelfAttention(nn.Module):
    """LN, 8-head self-attention with biases over the non-padded frames, dropout."""

    config: ConformerConfig

    @nn.compact
    def __call__(self, x, paddings, train: bool, dropout_rate: float):
        c = self.config
        valid = (1 - paddings) > 0
        mask = nn.make_attention_mask(valid, valid, dtype=jnp.float32)
        x = LayerNorm(c.encoder_dim)(x)
        x = nn.MultiHeadDotProductAttention(
            num_heads=c.num_attention_heads, qkv_features=c.encoder_dim, kernel_init=xavier,
            attention_fn=functools.partial(_scaled_attention,
                                           temperature=c.attention_temperature),
            dropout_rate=0.0, deterministic=True)(x, x, mask=mask)
        return Dropout()(x, dropout_rate, not train)


class BatchNorm(nn.Module):
    """Batch norm over the non-padded frames (lingvo's): statistics of the real frames, running
    averages with momentum 0.999, ``(1 + scale)``, padded frames zeroed."""

    config: ConformerConfig

    @nn.compact
    def __call__(self, x, paddings, update_batch_norm: bool, use_running_average: bool):
        c = self.config
        dim = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", jnp.zeros, (dim,), jnp.float32)
        ra_var = self.variable("batch_stats", "var", jnp.ones, (dim,), jnp.float32)
        scale = self.param("scale", nn.initializers.zeros, (dim,))
        bias = self.param("bias", nn.initializers.zeros, (dim,))
        mask = (1.0 - paddings)[..., None]
        axes = tuple(range(x.ndim - 1))
        if use_running_average:
            mean, var = ra_mean.value, ra_var.value
        else:
            count = jnp.maximum(jnp.sum(jnp.ones_like(x) * mask, axis=axes), 1.0)
            mean = jnp.sum(x * mask, axis=axes) / count
            var = jnp.sum(jnp.square(x - mean) * mask, axis=axes) / count
            if update_batch_norm and not self.is_initializing():
                m = c.batch_norm_momentum
                ra_mean.value = m * ra_mean.value + (1 - m) * mean
                ra_var.value = m * ra_var.value + (1 - m) * var
        out = (x - mean) * ((1 + scale) / jnp.sqrt(var + c.batch_norm_epsilon)) + bias
        return out * mask


class ConvolutionBlock(nn.Module):
    """LN, GLU of two Dense layers, mask, depthwise conv (kernel 5, no bias), padding-aware
    batch norm, activation, Dense, dropout."""

    config: ConformerConfig

    @nn.compact
    def __call__(self, x, paddings, train, update_batch_norm, use_running_average,
                 dropout_rate):
        c = self.config
        x = LayerNorm(c.encoder_dim)(x)
        gated = nn.Dense(c.encoder_dim, kernel_init=xavier)(x)
        gate = nn.Dense(c.encoder_dim, kernel_init=xavier)(x)
        x = gated * jax.nn.sigmoid(gate) * (1 - paddings)[..., None]
        x = nn.Conv(c.encoder_dim, (c.convolution_kernel_size,), padding="SAME",
                    feature_group_count=c.encoder_dim, use_bias=False, kernel_init=xavier)(x)
        x = BatchNorm(c)(x, paddings, update_batch_norm, use_running_average)
        x = nn.Dense(c.encoder_dim, kernel_init=xavier)(c.activation_fn(x))
        return Dropout()(x, dropout_rate, not train)


class ConformerBlock(nn.Module):
    """``x += FF/2; x += MHSA; x += Conv; x += FF/2``, then LN (``use_post_layer_norm``)."""

    config: ConformerConfig

    @nn.compact
    def __call__(self, x, paddings, train, update_batch_norm, use_running_average,
                 dropout_rate):
        c = self.config
        padding_mask = (1 - paddings)[..., None]
        x = x + 0.5 * FeedForwardModule(c)(x, padding_mask, train, dropout_rate)
        x = x + MultiHeadedSelfAttention(c)(x, paddings, train, dropout_rate)
        x = x + ConvolutionBlock(c)(x, paddings, train, update_batch_norm,
                                    use_running_average, dropout_rate)
        x = x + 0.5 * FeedForwardModule(c)(x, padding_mask, train, dropout_rate)
        if c.use_post_layer_norm:
            x = LayerNorm(c.encoder_dim)(x)
        return x


class Conformer(nn.Module):
    """Audio (batch, samples) and paddings to CTC logits (batch, frames / 4, 1024) and their
    paddings: front end, SpecAugment (training, given ``specaug_key``), subsampling, 4 blocks,
    LN, Dense. Dropout draws from the 'dropout' rng collection."""

    config: ConformerConfig

    @nn.compact
    def __call__(self, audio, paddings, train: bool, update_batch_norm: bool | None = None,
                 use_running_average_bn: bool | None = None,
                 dropout_rate: float = DROPOUT_RATE, specaug_key: jax.Array | None = None):
        c = self.config
        update_batch_norm = train if update_batch_norm is None else update_batch_norm
        if use_running_average_bn is None:
            use_running_average_bn = not train
        x, paddings = log_mel(audio, paddings)
        if train and c.use_specaug and specaug_key is not None:
            x = spec_augment(c, x, paddings, specaug_key)
        x, paddings = Subsample(c.encoder_dim)(x, paddings, train, dropout_rate)
        for _ in range(c.num_encoder_layers):
            x = ConformerBlock(c)(x, paddings, train, update_batch_norm,
                                  use_running_average_bn, dropout_rate)
        x = LayerNorm(c.encoder_dim)(x)
        return nn.Dense(c.vocab_size, kernel_init=xavier)(x), paddings
