"""finewebedu_lm's decoder-only Transformer in flax linen, with AlgoPerf's parameter names:
``embed`` (the tied token embedding), ``blocks_<i>`` {``RMSNorm_0``, ``CausalAttn_0``
{``query``, ``key``, ``value`` (1024 -> 8 x 128), ``attn_out_proj``, ``attn_scale``},
``RMSNorm_1``, ``Mlp_0`` {``Dense_0`` (1024 -> 8192), ``Dense_1`` (4096 -> 1024)}}, ``out_ln``.
Architecture and initialisation: ``finewebedu_lm.workload``'s docstring.

Attention is ``jax.nn.dot_product_attention`` (XLA's fused kernel choice: cuDNN's flash
attention on a GPU in bf16, XLA's own elsewhere); ``attention="plain"`` spells out the
einsum-softmax-einsum instead, for the benchmark that compares them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf.workloads.finewebedu_lm import workload as constants

ATTENTION_KINDS = ("fused", "plain")


def rope_angles(length: int, head_width: int, theta: float = constants.ROPE_THETA) -> jax.Array:
    """(length, head_width / 2) rotation angles: position t, pair i -> t / theta^(2i / d)."""
    inverse_frequencies = 1.0 / theta ** (jnp.arange(0, head_width, 2, dtype=jnp.float32)
                                         / head_width)
    return jnp.outer(jnp.arange(length, dtype=jnp.float32), inverse_frequencies)


def apply_rope(x: jax.Array, angles: jax.Array) -> jax.Array:
    """Rotates interleaved pairs (x[2i], x[2i+1]) of x (B, T, H, D) by the angles (T, D/2)."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    cos, sin = jnp.cos(angles)[None, :, None, :], jnp.sin(angles)[None, :, None, :]
    rotated = jnp.stack([pairs[..., 0] * cos - pairs[..., 1] * sin,
                         pairs[..., 1] * cos + pairs[..., 0] * sin], axis=-1)
    return rotated.reshape(x.shape)


def l2_normalize(x: jax.Array, epsilon: float = constants.QK_NORM_EPSILON) -> jax.Array:
    """x / (||x|| + epsilon) over the last axis (QK-norm)."""
    return x / (jnp.linalg.norm(x, axis=-1, keepdims=True) + epsilon)


def plain_causal_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Causal softmax attention at scale 1, (B, T, H, D) in and out, written out."""
    length = q.shape[1]
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k)
    causal = jnp.tril(jnp.ones((length, length), bool))
    scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
    return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)


class CausalAttn(nn.Module):
    """Causal self-attention with rotary positions and QK-norm."""

    width: int = constants.WIDTH
    num_heads: int = constants.NUM_HEADS
    attention: str = "fused"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        head_width = self.width // self.num_heads
        init = nn.initializers.normal(constants.INIT_STDDEV)
        q, k, v = (nn.DenseGeneral((self.num_heads, head_width), use_bias=False,
                                   kernel_init=init, name=name)(x)
                   for name in ("query", "key", "value"))
        angles = rope_angles(x.shape[1], head_width)
        q, k = l2_normalize(apply_rope(q, angles)), l2_normalize(apply_rope(k, angles))
        scale = self.param("attn_scale", nn.initializers.constant(constants.ATTN_SCALE_INIT),
                           ())
        q = q * scale
        if self.attention == "fused":
            mixed = jax.nn.dot_product_attention(q, k, v, scale=1.0, is_causal=True)
        else:
            mixed = plain_causal_attention(q, k, v)
        mixed = mixed.reshape(*x.shape[:-1], self.width)
        return nn.Dense(self.width, use_bias=False, name="attn_out_proj",
                        kernel_init=nn.initializers.normal(constants.RESIDUAL_INIT_STDDEV))(mixed)


class Mlp(nn.Module):
    """GLU MLP: width -> 2 x hidden, the first half times the sigmoid of the second
    (``nn.glu``), -> width."""

    width: int = constants.WIDTH
    hidden: int = constants.MLP_WIDTH

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Dense(2 * self.hidden, use_bias=False,
                     kernel_init=nn.initializers.normal(constants.INIT_STDDEV))(x)
        x = nn.glu(x, axis=-1)
        return nn.Dense(self.width, use_bias=False,
                        kernel_init=nn.initializers.normal(constants.RESIDUAL_INIT_STDDEV))(x)


class TBlock(nn.Module):
    """x + attention(RMSNorm(x)), then x + MLP(RMSNorm(x))."""

    attention: str = "fused"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        eps = constants.RMS_NORM_EPSILON
        x = x + CausalAttn(attention=self.attention)(nn.RMSNorm(epsilon=eps)(x))
        return x + Mlp()(nn.RMSNorm(epsilon=eps)(x))


class TransformerDo(nn.Module):
    """Tokens (B, T) -> next-token logits (B, T, 50257) from the tied embedding."""

    vocab_size: int = constants.VOCAB_SIZE
    num_layers: int = constants.NUM_LAYERS
    attention: str = "fused"

    def setup(self) -> None:
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got "
                             f"{self.attention!r}")
        self.embed = nn.Embed(self.vocab_size, constants.WIDTH,
                              embedding_init=nn.initializers.normal(constants.INIT_STDDEV))
        self.blocks = [TBlock(attention=self.attention) for _ in range(self.num_layers)]
        self.out_ln = nn.RMSNorm(epsilon=constants.RMS_NORM_EPSILON)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.embed.attend(self.out_ln(x))
