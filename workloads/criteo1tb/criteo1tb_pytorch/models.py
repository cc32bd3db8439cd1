"""DLRM-small and its residual variant in PyTorch, as AlgoPerf's (names, layout, init).

The same computation as ``criteo1tb_jax.models`` (see there), with AlgoPerf's PyTorch module
layout, so ``named_parameters()`` gives AlgoPerf's names: ``bot_mlp.<i>`` and ``top_mlp.<i>``
index ``nn.Sequential`` members (ReLU, LayerNorm and dropout take indices too), the residual
model wraps each layer in a block (``bot_mlp.<i>.module.0``), and the table is held in four
row chunks ``embedding_chunk_0`` ... ``_3`` (AlgoPerf's way of fitting it on devices).

AlgoPerf concatenates the four chunks into one table on every forward pass (2 GB copied per
step at full size); here each id is looked up in its own chunk, the same values and gradients
without the copy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from algoperf.pytorch_utils import CustomDropout, SequentialWithDropout

NUM_DENSE_FEATURES = 13
NUM_SPARSE_FEATURES = 26
NUM_CHUNKS = 4
DROPOUT_RATE = 0.0


class DenseBlock(nn.Module):
    """``module(x)``, plus ``x`` when residual; passes a dropout rate to a module taking one."""

    def __init__(self, module: nn.Module, resnet: bool = False) -> None:
        super().__init__()
        self.module = module
        self.resnet = resnet
        self._supports_custom_dropout = True

    def forward(self, x: torch.Tensor, p: float = DROPOUT_RATE) -> torch.Tensor:
        y = self.module(x, p) if getattr(self.module, "_supports_custom_dropout", False) \
            else self.module(x)
        return y + x if self.resnet else y


class DotInteract(nn.Module):
    """The bottom output followed by the upper triangle (diagonal included, row-major) of the
    pairwise dot products of it and the embeddings."""

    def __init__(self, num_sparse_features: int = NUM_SPARSE_FEATURES) -> None:
        super().__init__()
        # Plain lists: no tensor, so the module builds on the meta device too.
        rows, cols = np.triu_indices(num_sparse_features + 1)
        self.rows, self.cols = rows.tolist(), cols.tolist()

    def forward(self, dense: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        stacked = torch.cat([dense.unsqueeze(1), sparse], dim=1)
        products = torch.bmm(stacked, stacked.transpose(1, 2))
        return torch.cat([dense, products[:, self.rows, self.cols]], dim=1)


def register_table(owner: nn.Module, vocab_size: int, embed_dim: int, scale: float) -> None:
    """The one table of ``vocab_size`` rows as ``NUM_CHUNKS`` parameters
    ``embedding_chunk_<i>`` of ``owner`` (AlgoPerf's names), uniform on [0, scale)."""
    if vocab_size % NUM_CHUNKS:
        raise ValueError(f"vocab_size {vocab_size} must be a multiple of {NUM_CHUNKS}")
    for i in range(NUM_CHUNKS):
        chunk = nn.Parameter(torch.empty(vocab_size // NUM_CHUNKS, embed_dim))
        with torch.no_grad():
            chunk.uniform_(0.0, 1.0).mul_(scale)
        owner.register_parameter(f"embedding_chunk_{i}", chunk)


def lookup(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The (N, 26, D) embeddings of float32 ids (cast to int32, modulo the vocabulary)."""
    flat = ids.to(torch.int32).reshape(-1).long() % model.vocab_size
    rows = model.vocab_size // NUM_CHUNKS
    chunk_of, offset = flat // rows, flat % rows
    out = torch.empty((len(flat), model.embed_dim), dtype=model.embedding_chunk_0.dtype,
                      device=ids.device)
    for i in range(NUM_CHUNKS):
        where = torch.nonzero(chunk_of == i).squeeze(1)
        out = out.index_put((where,), getattr(model, f"embedding_chunk_{i}")[offset[where]])
    return out.reshape(len(ids), -1, model.embed_dim)


def _init_bottom(mlp: nn.Module) -> None:
    for module in mlp.modules():
        if isinstance(module, nn.Linear):
            limit = math.sqrt(6.0 / (module.in_features + module.out_features))
            nn.init.uniform_(module.weight, -limit, limit)
            nn.init.normal_(module.bias, 0.0, math.sqrt(1.0 / module.out_features))


def _init_top(mlp: nn.Module) -> None:
    for module in mlp.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0,
                            math.sqrt(2.0 / (module.in_features + module.out_features)))
            nn.init.normal_(module.bias, 0.0, math.sqrt(1.0 / module.out_features))


class DlrmSmall(nn.Module):
    """AlgoPerf's DLRM-small: bottom MLP, dot interaction, top MLP."""

    def __init__(self, vocab_size: int, mlp_bottom_dims: Sequence[int] = (512, 256, 128),
                 mlp_top_dims: Sequence[int] = (1024, 1024, 512, 256, 1), embed_dim: int = 128,
                 use_layer_norm: bool = False,
                 embedding_init_multiplier: float | None = None) -> None:
        super().__init__()
        self.vocab_size, self.embed_dim = vocab_size, embed_dim
        scale = vocab_size ** -0.5 if embedding_init_multiplier is None \
            else embedding_init_multiplier
        register_table(self, vocab_size, embed_dim, scale)
        layers: list[nn.Module] = []
        fan_in = NUM_DENSE_FEATURES
        for width in mlp_bottom_dims:
            layers += [nn.Linear(fan_in, width), nn.ReLU(inplace=True)]
            if use_layer_norm:
                layers.append(nn.LayerNorm(width, eps=1e-6))
            fan_in = width
        self.bot_mlp = nn.Sequential(*layers)
        _init_bottom(self.bot_mlp)
        self.dot_interact = DotInteract()
        features = NUM_SPARSE_FEATURES + 1
        fan_in = mlp_bottom_dims[-1] + features * (features + 1) // 2
        layers = []
        last = len(mlp_top_dims) - 1
        for index, width in enumerate(mlp_top_dims):
            layers.append(nn.Linear(fan_in, width))
            if index < last:
                layers.append(nn.ReLU(inplace=True))
                if use_layer_norm:
                    layers.append(nn.LayerNorm(width, eps=1e-6))
            if index == last - 1:
                layers.append(CustomDropout())
            fan_in = width
        self.top_mlp = SequentialWithDropout(*layers)
        self.embed_ln = nn.LayerNorm(embed_dim, eps=1e-6) if use_layer_norm else None
        _init_top(self.top_mlp)

    def forward(self, x: torch.Tensor, dropout_rate: float = DROPOUT_RATE) -> torch.Tensor:
        dense = self.bot_mlp(x[:, :NUM_DENSE_FEATURES])
        embedded = lookup(self, x[:, NUM_DENSE_FEATURES:])
        if self.embed_ln is not None:
            embedded = self.embed_ln(embedded)
        return self.top_mlp(self.dot_interact(dense, embedded), dropout_rate)


class DLRMResNet(nn.Module):
    """AlgoPerf's residual DLRM (``criteo1tb_resnet``): residual MLPs, embeddings concatenated
    with the bottom output."""

    def __init__(self, vocab_size: int, mlp_bottom_dims: Sequence[int] = (256, 256, 256),
                 mlp_top_dims: Sequence[int] = (256, 256, 256, 256, 1),
                 embed_dim: int = 128) -> None:
        super().__init__()
        self.vocab_size, self.embed_dim = vocab_size, embed_dim
        register_table(self, vocab_size, embed_dim, vocab_size ** -0.5)
        blocks: list[nn.Module] = []
        fan_in = NUM_DENSE_FEATURES
        for index, width in enumerate(mlp_bottom_dims):
            blocks.append(DenseBlock(nn.Sequential(nn.Linear(fan_in, width),
                                                   nn.ReLU(inplace=True)), resnet=index > 0))
            fan_in = width
        self.bot_mlp = nn.Sequential(*blocks)
        _init_bottom(self.bot_mlp)
        fan_in = mlp_bottom_dims[-1] + NUM_SPARSE_FEATURES * embed_dim
        last = len(mlp_top_dims) - 1
        blocks = []
        for index, width in enumerate(mlp_top_dims):
            layers: list[nn.Module] = [nn.Linear(fan_in, width)]
            if index < last:
                layers.append(nn.ReLU(inplace=True))
            if index == last - 1:
                layers.append(CustomDropout())
            blocks.append(DenseBlock(SequentialWithDropout(*layers),
                                     resnet=0 < index < last))
            fan_in = width
        self.top_mlp = SequentialWithDropout(*blocks)
        _init_top(self.top_mlp)

    def forward(self, x: torch.Tensor, dropout_rate: float = DROPOUT_RATE) -> torch.Tensor:
        dense = self.bot_mlp(x[:, :NUM_DENSE_FEATURES])
        embedded = lookup(self, x[:, NUM_DENSE_FEATURES:]).reshape(len(x), -1)
        return self.top_mlp(torch.cat([dense, embedded], dim=1), dropout_rate)
