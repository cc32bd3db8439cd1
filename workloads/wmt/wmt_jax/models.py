"""wmt's encoder-decoder Transformer in flax linen, with AlgoPerf's parameter names:
``shared_embedding`` (32,000 x 1,024, also the output layer), ``encoder`` {``encoderblock_<i>``
{``LayerNorm_0``, ``MultiHeadDotProductAttention_0`` {``query``, ``key``, ``value``,
``out``}, ``LayerNorm_1``, ``MlpBlock_0`` {``Dense_0``, [``Dense_1`` GLU,] ``Dense_<last>``}},
``encoder_layernorm``}, ``decoder`` {``encoderdecoderblock_<i>`` (self-attention ``_0``,
cross-attention ``_1``, three LayerNorms, the MLP), ``encoderdecoder_layernorm``}.
Architecture: ``wmt.workload``'s docstring. Attention is flax's
``nn.MultiHeadDotProductAttention`` (with its autoregressive cache when ``decode``).

Dropout is written out (``dropout``) because the rate is a call argument, as AlgoPerf's
``model_fn`` takes it, and may be a traced value; flax's ``nn.Dropout`` needs it static.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from algoperf.workloads.wmt import workload as constants

Array = jax.Array


def dropout(module: nn.Module, x: Array, rate: float | Array, deterministic: bool) -> Array:
    """Inverted dropout of ``x`` at ``rate`` with the module's 'dropout' rng."""
    if deterministic:
        return x
    keep = 1.0 - rate
    mask = jax.random.bernoulli(module.make_rng("dropout"), keep, x.shape)
    return jnp.where(mask, x / keep, 0.0)


def sinusoidal_table(max_length: int, width: int) -> np.ndarray:
    """(1, max_length, width): sines of position / 10000^(i / (width/2 - 1)) in the first
    half of the features, cosines in the second (the table of flax's WMT example)."""
    half = width // 2
    frequencies = np.exp(np.arange(half) * -np.log(10_000.0) / (half - 1))
    angles = np.arange(max_length)[:, None] * frequencies[None, :]
    table = np.zeros((max_length, width), np.float32)
    table[:, :half], table[:, half:2 * half] = np.sin(angles), np.cos(angles)
    return table[None]


def shift_right(x: Array) -> Array:
    """Targets as decoder inputs: a 0 start token in front, the last token dropped."""
    return jnp.pad(x, ((0, 0), (1, 0)))[:, :-1]


class AddPositionEmbs(nn.Module):
    """Adds the fixed sinusoidal positions: by index, by ``positions`` for packed rows, or in
    ``decode`` mode the position of a step counter kept in the 'cache' collection."""

    decode: bool = False

    @nn.compact
    def __call__(self, x: Array, positions: Array | None = None) -> Array:
        table = jnp.asarray(sinusoidal_table(constants.MAX_LENGTH, x.shape[-1]))
        if self.decode:
            initialised = self.has_variable("cache", "cache_index")
            index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.uint32))
            if initialised:
                step = index.value
                index.value = step + 1
                return x + jax.lax.dynamic_slice_in_dim(table, step.astype(jnp.int32), 1, 1)
        if positions is None:
            return x + table[:, :x.shape[1]]
        return x + jnp.take(table[0], positions, axis=0)


class MlpBlock(nn.Module):
    """width -> mlp_dim (activation; with ``glu``, times a second linear map) -> width."""

    mlp_dim: int
    activation: Callable[[Array], Array]
    glu: bool
    deterministic: bool

    @nn.compact
    def __call__(self, x: Array, dropout_rate: float | Array) -> Array:
        dense = dict(kernel_init=nn.initializers.xavier_uniform(),
                     bias_init=nn.initializers.normal(stddev=1e-6))
        hidden = self.activation(nn.Dense(self.mlp_dim, **dense)(x))
        if self.glu:
            hidden = hidden * nn.Dense(self.mlp_dim, **dense)(x)
        hidden = dropout(self, hidden, dropout_rate, self.deterministic)
        out = nn.Dense(x.shape[-1], **dense)(hidden)
        return dropout(self, out, dropout_rate, self.deterministic)


class _Block(nn.Module):
    """Shared settings and the attention constructor of the encoder and decoder blocks."""

    num_heads: int
    mlp_dim: int
    activation: Callable[[Array], Array]
    glu: bool
    pre_ln: bool
    attention_temp: float
    deterministic: bool

    def attention(self, decode: bool = False) -> nn.MultiHeadDotProductAttention:
        return nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, use_bias=False, broadcast_dropout=False,
            dropout_rate=0.0, deterministic=True, decode=decode,
            kernel_init=nn.initializers.xavier_uniform())

    def mlp(self) -> MlpBlock:
        return MlpBlock(self.mlp_dim, self.activation, self.glu, self.deterministic)

    def sublayer(self, x: Array, body: Callable[[Array], Array]) -> Array:
        """x + body(LN(x)) pre-LN, LN(x + body(x)) post-LN (body drops out its output)."""
        y = body(nn.LayerNorm()(x) if self.pre_ln else x)
        y = x + y
        return y if self.pre_ln else nn.LayerNorm()(y)


class Encoder1DBlock(_Block):
    """Self-attention and MLP."""

    @nn.compact
    def __call__(self, x: Array, mask: Array | None, dropout_rate: float | Array) -> Array:
        def attend(y):
            y = self.attention()(self.attention_temp * y, y, mask=mask)
            return dropout(self, y, dropout_rate, self.deterministic)

        x = self.sublayer(x, attend)
        return self.sublayer(x, lambda y: self.mlp()(y, dropout_rate))


class EncoderDecoder1DBlock(_Block):
    """Causal self-attention, attention over the encoded inputs, MLP."""

    decode: bool = False

    @nn.compact
    def __call__(self, x: Array, encoded: Array, self_mask: Array | None,
                 cross_mask: Array | None, dropout_rate: float | Array) -> Array:
        def self_attend(y):
            y = self.attention(self.decode)(self.attention_temp * y, y, mask=self_mask)
            return dropout(self, y, dropout_rate, self.deterministic)

        def cross_attend(y):
            y = self.attention()(self.attention_temp * y, encoded, mask=cross_mask)
            return dropout(self, y, dropout_rate, self.deterministic)

        x = self.sublayer(x, self_attend)
        x = self.sublayer(x, cross_attend)
        return self.sublayer(x, lambda y: self.mlp()(y, dropout_rate))


class Encoder(nn.Module):
    """Embedded, positioned inputs through the encoder blocks (and the final LayerNorm)."""

    embedding: nn.Embed
    block: dict
    num_layers: int
    pre_ln: bool
    deterministic: bool

    @nn.compact
    def __call__(self, inputs: Array, positions: Array | None, mask: Array,
                 dropout_rate: float | Array) -> Array:
        x = self.embedding(inputs.astype(jnp.int32))
        x = AddPositionEmbs(name="posembed_input")(x, positions)
        x = dropout(self, x, dropout_rate, self.deterministic)
        for layer in range(self.num_layers):
            x = Encoder1DBlock(**self.block, name=f"encoderblock_{layer}")(x, mask,
                                                                           dropout_rate)
        return nn.LayerNorm(name="encoder_layernorm")(x) if self.pre_ln else x


class Decoder(nn.Module):
    """Shifted, embedded targets through the decoder blocks; logits from the embedding."""

    embedding: nn.Embed
    block: dict
    num_layers: int
    pre_ln: bool
    deterministic: bool
    decode: bool

    @nn.compact
    def __call__(self, encoded: Array, targets: Array, positions: Array | None,
                 self_mask: Array | None, cross_mask: Array,
                 dropout_rate: float | Array) -> Array:
        y = targets.astype(jnp.int32)
        if not self.decode:
            y = shift_right(y)
        y = self.embedding(y)
        y = AddPositionEmbs(decode=self.decode, name="posembed_output")(y, positions)
        y = dropout(self, y, dropout_rate, self.deterministic)
        for layer in range(self.num_layers):
            y = EncoderDecoder1DBlock(**self.block, decode=self.decode,
                                      name=f"encoderdecoderblock_{layer}")(
                y, encoded, self_mask, cross_mask, dropout_rate)
        if self.pre_ln:
            y = nn.LayerNorm(name="encoderdecoder_layernorm")(y)
        return self.embedding.attend(y) / jnp.sqrt(y.shape[-1]).astype(y.dtype)


def _segment_mask(queries: Array | None, keys: Array | None) -> Array | None:
    if queries is None:
        return None
    return nn.make_attention_mask(queries, keys, jnp.equal)


class Transformer(nn.Module):
    """(inputs, targets) token rows (B, T) -> logits (B, T, vocab) of every target position
    given the earlier ones; packed rows with positions and segment ids."""

    vocab_size: int = constants.VOCAB_SIZE
    width: int = constants.WIDTH
    num_heads: int = constants.NUM_HEADS
    num_layers: int = constants.NUM_LAYERS
    mlp_dim: int = constants.MLP_WIDTH
    activation: str = "relu"
    glu: bool = False
    pre_ln: bool = True
    attention_temp: float = 1.0
    deterministic: bool = False
    decode: bool = False

    def setup(self) -> None:
        self.shared_embedding = nn.Embed(self.vocab_size, self.width,
                                         embedding_init=nn.initializers.normal(stddev=1.0))
        block = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim,
                     activation={"relu": nn.relu, "tanh": jnp.tanh}[self.activation],
                     glu=self.glu, pre_ln=self.pre_ln, attention_temp=self.attention_temp,
                     deterministic=self.deterministic)
        stack = dict(embedding=self.shared_embedding, block=block, num_layers=self.num_layers,
                     pre_ln=self.pre_ln, deterministic=self.deterministic)
        self.encoder = Encoder(**stack)
        self.decoder = Decoder(**stack, decode=self.decode)

    def encode(self, inputs: Array, inputs_positions: Array | None = None,
               inputs_segmentation: Array | None = None,
               dropout_rate: float | Array = constants.DROPOUT_RATE) -> Array:
        """The encoder's output (B, T, width); padding (id 0) and other segments masked."""
        mask = nn.combine_masks(nn.make_attention_mask(inputs > 0, inputs > 0),
                                _segment_mask(inputs_segmentation, inputs_segmentation))
        return self.encoder(inputs, inputs_positions, mask, dropout_rate)

    def decode_logits(self, encoded: Array, inputs: Array, targets: Array,
                      targets_positions: Array | None = None,
                      inputs_segmentation: Array | None = None,
                      targets_segmentation: Array | None = None,
                      dropout_rate: float | Array = constants.DROPOUT_RATE) -> Array:
        """Logits of ``targets`` given the encoded ``inputs`` (whose ids give the padding
        mask). With ``decode``, ``targets`` is one step (B, 1) and the cache holds the rest."""
        if self.decode:
            self_mask = None
            cross_mask = nn.make_attention_mask(jnp.ones_like(targets) > 0, inputs > 0)
        else:
            self_mask = nn.combine_masks(nn.make_attention_mask(targets > 0, targets > 0),
                                         nn.make_causal_mask(targets))
            cross_mask = nn.make_attention_mask(targets > 0, inputs > 0)
        if inputs_segmentation is not None:
            self_mask = nn.combine_masks(self_mask, _segment_mask(targets_segmentation,
                                                                  targets_segmentation))
            cross_mask = nn.combine_masks(cross_mask, _segment_mask(targets_segmentation,
                                                                    inputs_segmentation))
        return self.decoder(encoded, targets, targets_positions, self_mask, cross_mask,
                            dropout_rate)

    def __call__(self, inputs: Array, targets: Array, inputs_positions: Array | None = None,
                 targets_positions: Array | None = None,
                 inputs_segmentation: Array | None = None,
                 targets_segmentation: Array | None = None,
                 dropout_rate: float | Array = constants.DROPOUT_RATE) -> Array:
        encoded = self.encode(inputs, inputs_positions, inputs_segmentation, dropout_rate)
        return self.decode_logits(encoded, inputs, targets, targets_positions,
                                  inputs_segmentation, targets_segmentation, dropout_rate)
