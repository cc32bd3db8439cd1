"""DLRM-small and its residual variant in flax linen, as AlgoPerf's (from init2winit).

Inputs are (N, 39) float32: 13 log-scaled dense features, then 26 categorical ids carried as
float32 (the pipeline's layout); the ids are cast to int32 and reduced modulo ``vocab_size``
into one table shared by all 26 features.

``DlrmSmall``: the bottom MLP (``Dense`` + ReLU [+ ``LayerNorm``] per width) maps the dense
features to a 128-vector; it and the 26 looked-up embeddings [each ``LayerNorm``'d] are
stacked into 27 vectors whose pairwise dot products (the upper triangle with the diagonal,
378 values) are appended to the bottom output (506 values); the top MLP (ReLU [+
``LayerNorm``] between layers, dropout after the second-to-last) gives one logit. ``DLRMResNet``
makes the bottom and top MLPs residual and concatenates the embeddings instead of
interacting them. Layers are created in call order, so the parameter tree is AlgoPerf's
(``Dense_0`` ... ``Dense_7``, ``LayerNorm_<i>``, ``embedding_table``).

Initialisers are AlgoPerf's: Glorot-uniform bottom kernels, normal top kernels of variance
2 / (fan_in + fan_out), normal biases of variance 1 / fan_out, and the table uniform on
[0, 1) times 1 / sqrt(vocab_size) (or ``embedding_init_multiplier``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from algoperf.workloads.common.dropout_jax import Dropout

NUM_DENSE_FEATURES = 13
NUM_SPARSE_FEATURES = 26
DROPOUT_RATE = 0.0


def _normal(stddev: float):
    return jax.nn.initializers.normal(stddev=stddev)


def _table_init(scale: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype) * scale

    return init


def dot_interact(features: jnp.ndarray) -> jnp.ndarray:
    """(N, F, D) -> (N, F (F + 1) / 2): the upper triangle (diagonal included, row-major) of
    each example's matrix of pairwise dot products."""
    products = jnp.einsum("nfd,ngd->nfg", features, features)
    rows, cols = jnp.triu_indices(features.shape[1])
    return products[:, rows, cols]


def _lookup(module: nn.Module, ids: jnp.ndarray, vocab_size: int, embed_dim: int,
            scale: float) -> jnp.ndarray:
    """The (N, 26, D) embeddings of the float32 ids: one table, created as the calling
    module's top-level parameter ``embedding_table``."""
    table = module.param("embedding_table", _table_init(scale), (vocab_size, embed_dim))
    return table[ids.astype(jnp.int32) % vocab_size]


class DlrmSmall(nn.Module):
    """AlgoPerf's DLRM-small: bottom MLP, dot interaction, top MLP."""

    vocab_size: int = 32 * 128 * 1024
    mlp_bottom_dims: Sequence[int] = (512, 256, 128)
    mlp_top_dims: Sequence[int] = (1024, 1024, 512, 256, 1)
    embed_dim: int = 128
    use_layer_norm: bool = False
    embedding_init_multiplier: float | None = None

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool,
                 dropout_rate: float | jnp.ndarray = DROPOUT_RATE) -> jnp.ndarray:
        dense, ids = x[:, :NUM_DENSE_FEATURES], x[:, NUM_DENSE_FEATURES:]
        for width in self.mlp_bottom_dims:
            dense = nn.Dense(width, kernel_init=jax.nn.initializers.glorot_uniform(),
                             bias_init=_normal(width ** -0.5))(dense)
            dense = nn.relu(dense)
            if self.use_layer_norm:
                dense = nn.LayerNorm()(dense)
        scale = (self.vocab_size ** -0.5 if self.embedding_init_multiplier is None
                 else self.embedding_init_multiplier)
        embedded = _lookup(self, ids, self.vocab_size, self.embed_dim, scale)
        if self.use_layer_norm:
            embedded = nn.LayerNorm()(embedded)
        stacked = jnp.concatenate([dense.reshape(len(x), -1, self.embed_dim), embedded], axis=1)
        top = jnp.concatenate([dense, dot_interact(stacked)], axis=-1)
        last = len(self.mlp_top_dims) - 1
        fan_in = top.shape[-1]
        for index, width in enumerate(self.mlp_top_dims):
            top = nn.Dense(width, kernel_init=_normal((2.0 / (fan_in + width)) ** 0.5),
                           bias_init=_normal(width ** -0.5))(top)
            if index < last:
                top = nn.relu(top)
                if self.use_layer_norm:
                    top = nn.LayerNorm()(top)
            if index == last - 1:
                top = Dropout()(top, dropout_rate, deterministic=not train)
            fan_in = width
        return top


class DLRMResNet(nn.Module):
    """AlgoPerf's residual DLRM (``criteo1tb_resnet``): residual MLPs, embeddings
    concatenated with the bottom output (no interaction)."""

    vocab_size: int = 32 * 128 * 1024
    mlp_bottom_dims: Sequence[int] = (256, 256, 256)
    mlp_top_dims: Sequence[int] = (256, 256, 256, 256, 1)
    embed_dim: int = 128

    @nn.compact
    def __call__(self, x: jnp.ndarray, train: bool,
                 dropout_rate: float | jnp.ndarray = DROPOUT_RATE) -> jnp.ndarray:
        dense, ids = x[:, :NUM_DENSE_FEATURES], x[:, NUM_DENSE_FEATURES:]
        first, *rest = self.mlp_bottom_dims
        dense = nn.relu(nn.Dense(first, kernel_init=jax.nn.initializers.glorot_uniform(),
                                 bias_init=_normal(first ** -0.5))(dense))
        for width in rest:
            dense += nn.relu(nn.Dense(width, kernel_init=jax.nn.initializers.glorot_uniform(),
                                      bias_init=_normal(width ** -0.5))(dense))
        embedded = _lookup(self, ids, self.vocab_size, self.embed_dim, self.vocab_size ** -0.5)
        top = jnp.concatenate([dense, embedded.reshape(len(x), -1)], axis=1)
        dims = self.mlp_top_dims
        top = nn.relu(nn.Dense(dims[0], kernel_init=_normal((2.0 / (top.shape[1] + dims[0]))
                                                            ** 0.5),
                               bias_init=_normal(dims[0] ** -0.5))(top))
        for index in range(1, len(dims) - 1):
            fan_in, width = dims[index - 1], dims[index]
            branch = nn.relu(nn.Dense(width, kernel_init=_normal((2.0 / (fan_in + width)) ** 0.5),
                                      bias_init=_normal(width ** -0.5))(top))
            if index == len(dims) - 2:
                branch = Dropout()(branch, dropout_rate, deterministic=not train)
            top += branch
        return nn.Dense(1, kernel_init=_normal((2.0 / (dims[-2] + 1)) ** 0.5),
                        bias_init=_normal(1.0))(top)
