"""ImageNet's ViT-S/16 in flax: AlgoPerf's architecture (after big_vision's) and names.

16 x 16 patches embedded by a strided convolution (``conv_patch_extract``), fixed 2-D sin-cos
position embeddings (no class token), input dropout, an encoder (``Transformer``) of 12
pre-layer-norm blocks ``encoderblock_<i>`` (``LayerNorm_0``, ``MultiHeadDotProductAttention_1``,
``LayerNorm_2``, ``MlpBlock_3``) and a final ``encoder_layernorm``, the mean over tokens (or
``MAPHead_0``), ``pre_logits`` (dense + tanh) and a zero-initialised ``head``. Kernels of the
attention and MLP layers are Xavier-uniform, MLP biases N(0, 1e-6^2), layer-norm epsilon 1e-6,
GELU the tanh approximation. Dropout (rate per call, AlgoPerf's knob) follows the embedding,
the MLP's hidden layer and both residual branches; attention probabilities have none.

Variants: ``use_glu`` multiplies the MLP's activated hidden layer by a dense layer of it;
``use_post_layer_norm`` moves each block's layer norms after its residual adds and drops the
final one (AlgoPerf's JAX version of it calls a dropout layer's output and fails at init; this
one applies the dropout as the pre-norm blocks do); ``use_map`` pools with a learned probe
attending over the tokens.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn


def posemb_sincos_2d(h: int, w: int, width: int, temperature: float = 10_000.0) -> np.ndarray:
    """(1, h * w, width) position embeddings, MoCo v3's layout ``[sin x, cos x, sin y, cos
    y]``; a constant of the input size (computed in numpy, folded into the program)."""
    if width % 4:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {width}")
    y, x = np.mgrid[:h, :w]
    omega = 1.0 / temperature ** (np.arange(width // 4) / (width // 4 - 1))
    y = np.einsum("m,d->md", y.flatten(), omega)
    x = np.einsum("m,d->md", x.flatten(), omega)
    pe = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)
    return pe[None].astype(np.float32)


def dropout(x: jax.Array, rate: float | jax.Array, train: bool,
            rng: jax.Array | None) -> jax.Array:
    """Inverted dropout whose rate may change from call to call (a traced value too):
    flax's ``nn.Dropout`` takes its rate at construction and branches on it in Python.
    A zero rate (AlgoPerf's default) or eval mode leaves ``x`` as is."""
    if not train or (isinstance(rate, int | float) and rate == 0.0):
        return x
    keep = 1.0 - rate
    mask = jax.random.bernoulli(rng, keep, x.shape)
    return jnp.where(mask, x / keep, 0.0)


class _Dropout(nn.Module):
    """``dropout`` with a key from the module's 'dropout' rng stream (a parameterless layer)."""

    @nn.compact
    def __call__(self, x: jax.Array, rate: float | jax.Array, train: bool) -> jax.Array:
        needs_rng = train and not (isinstance(rate, int | float) and rate == 0.0)
        return dropout(x, rate, train, self.make_rng("dropout") if needs_rng else None)


class MlpBlock(nn.Module):
    """Dense to ``mlp_dim``, GELU, (GLU gate,) dropout, dense back to the input width."""

    mlp_dim: int
    use_glu: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, dropout_rate: float = 0.0
                 ) -> jax.Array:
        inits = {"kernel_init": nn.initializers.xavier_uniform(),
                 "bias_init": nn.initializers.normal(stddev=1e-6)}
        width = x.shape[-1]
        x = nn.gelu(nn.Dense(self.mlp_dim, **inits)(x))
        if self.use_glu:
            x = x * nn.Dense(self.mlp_dim, **inits)(x)
        x = _Dropout()(x, dropout_rate, train)
        return nn.Dense(width, **inits)(x)


class Encoder1DBlock(nn.Module):
    """Self-attention and MLP, each in a residual branch; layer norms before the branches, or
    after the adds with ``use_post_layer_norm``."""

    mlp_dim: int
    num_heads: int
    use_glu: bool = False
    use_post_layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, dropout_rate: float = 0.0
                 ) -> jax.Array:
        attention = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform(),
            deterministic=True, name="MultiHeadDotProductAttention_1")
        norm_0, norm_2 = nn.LayerNorm(name="LayerNorm_0"), nn.LayerNorm(name="LayerNorm_2")
        mlp = MlpBlock(self.mlp_dim, self.use_glu, name="MlpBlock_3")
        if self.use_post_layer_norm:
            x = norm_0(x + _Dropout()(attention(x), dropout_rate, train))
            return norm_2(x + _Dropout()(mlp(x, train, dropout_rate), dropout_rate, train))
        x = x + _Dropout()(attention(norm_0(x)), dropout_rate, train)
        return x + _Dropout()(mlp(norm_2(x), train, dropout_rate), dropout_rate, train)


class Encoder(nn.Module):
    """``depth`` encoder blocks, then a layer norm (none with post-layer norm)."""

    depth: int
    mlp_dim: int
    num_heads: int
    use_glu: bool = False
    use_post_layer_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, dropout_rate: float = 0.0
                 ) -> jax.Array:
        for layer in range(self.depth):
            x = Encoder1DBlock(self.mlp_dim, self.num_heads, self.use_glu,
                               self.use_post_layer_norm, name=f"encoderblock_{layer}")(
                x, train, dropout_rate)
        if self.use_post_layer_norm:
            return x
        return nn.LayerNorm(name="encoder_layernorm")(x)


class MAPHead(nn.Module):
    """Multihead attention pooling: a learned probe attends over the tokens, then a residual
    MLP; AlgoPerf's JAX head applies no dropout."""

    mlp_dim: int
    num_heads: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, _, width = x.shape
        probe = self.param("probe", nn.initializers.xavier_uniform(), (1, 1, width), x.dtype)
        x = nn.MultiHeadDotProductAttention(
            num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform())(
            jnp.tile(probe, [n, 1, 1]), x)
        x = x + MlpBlock(self.mlp_dim)(nn.LayerNorm()(x))
        return x[:, 0]


class ViT(nn.Module):
    """ViT for ``num_classes`` classes (ViT-S/16 by default)."""

    num_classes: int = 1000
    patch_size: int = 16
    width: int = 384
    depth: int = 12
    mlp_dim: int = 1536
    num_heads: int = 6
    use_glu: bool = False
    use_post_layer_norm: bool = False
    use_map: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False, dropout_rate: float = 0.0
                 ) -> jax.Array:
        """Logits of NHWC images; dropout at ``dropout_rate`` in TRAIN mode (``train``)."""
        patch = (self.patch_size, self.patch_size)
        x = nn.Conv(self.width, patch, strides=patch, padding="VALID",
                    name="conv_patch_extract")(x)
        n, h, w, c = x.shape
        x = jnp.reshape(x, (n, h * w, c)) + posemb_sincos_2d(h, w, c)
        x = _Dropout()(x, dropout_rate, train)
        x = Encoder(self.depth, self.mlp_dim, self.num_heads, self.use_glu,
                    self.use_post_layer_norm, name="Transformer")(x, train, dropout_rate)
        x = MAPHead(self.mlp_dim, self.num_heads)(x) if self.use_map else jnp.mean(x, axis=1)
        x = nn.tanh(nn.Dense(self.width, name="pre_logits")(x))
        return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros, name="head")(x)
