"""charlm's model in flax: ``embed``, ``position``, ``block_<i>`` (``ln_1``, ``attention``
{``query``, ``key``, ``value``, ``out``}, ``ln_2``, ``mlp_in``, ``mlp_out``), ``ln_final``,
``head``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf.workloads.charlm import workload as constants


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions <= t."""

    width: int
    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, length, _ = x.shape
        head_width = self.width // self.num_heads
        # Named as flax's attention layers (AlgoPerf's parameter types read the names).
        q, k, v = (nn.Dense(self.width, name=part)(x).reshape(
            batch, length, self.num_heads, head_width) for part in ("query", "key", "value"))
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_width)
        causal = jnp.tril(jnp.ones((length, length), bool))
        scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
        mixed = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        return nn.Dense(self.width, name="out")(mixed.reshape(batch, length, self.width))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: attention, then a GELU MLP, each residual."""

    width: int
    num_heads: int
    mlp_width: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        eps = constants.LAYER_NORM_EPSILON
        h = nn.LayerNorm(epsilon=eps, name="ln_1")(x)
        x = x + CausalSelfAttention(self.width, self.num_heads, name="attention")(h)
        h = nn.LayerNorm(epsilon=eps, name="ln_2")(x)
        h = nn.gelu(nn.Dense(self.mlp_width, name="mlp_in")(h), approximate=True)
        return x + nn.Dense(self.width, name="mlp_out")(h)


class CharTransformer(nn.Module):
    """Byte tokens (B, T) -> next-byte logits (B, T, vocab)."""

    vocab_size: int = constants.VOCAB_SIZE
    sequence_length: int = constants.SEQUENCE_LENGTH
    width: int = constants.WIDTH
    num_heads: int = constants.NUM_HEADS
    num_layers: int = constants.NUM_LAYERS
    mlp_width: int = constants.MLP_WIDTH

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = nn.Embed(self.vocab_size, self.width, name="embed")(tokens)
        position = self.param("position", nn.initializers.normal(constants.POSITION_INIT_STDDEV),
                              (self.sequence_length, self.width))
        x = x + position[:tokens.shape[1]]
        for index in range(self.num_layers):
            x = Block(self.width, self.num_heads, self.mlp_width, name=f"block_{index}")(x)
        x = nn.LayerNorm(epsilon=constants.LAYER_NORM_EPSILON, name="ln_final")(x)
        return nn.Dense(self.vocab_size, name="head")(x)
