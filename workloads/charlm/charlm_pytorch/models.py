"""charlm's model in PyTorch: ``embed``, ``position``, ``blocks.<i>`` (``ln_1``, ``attention``
{``query``, ``key``, ``value``, ``out``}, ``ln_2``, ``mlp_in``, ``mlp_out``), ``ln_final``,
``head``; initialised as the flax model (LeCun-normal linear layers, embeddings normal with
variance 1/width)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from algoperf.workloads.charlm import workload as constants
from algoperf.workloads.common.pytorch_init import pytorch_default_init


def _linear(fan_in: int, fan_out: int) -> nn.Linear:
    layer = nn.Linear(fan_in, fan_out)
    pytorch_default_init(layer)
    return layer


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions <= t."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        # Named as the flax model's layers (AlgoPerf's parameter types read the names).
        self.query = _linear(width, width)
        self.key = _linear(width, width)
        self.value = _linear(width, width)
        self.out = _linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        head_width = width // self.num_heads
        q, k, v = (layer(x).reshape(batch, length, self.num_heads, head_width)
                   for layer in (self.query, self.key, self.value))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_width)
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
        mixed = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(dim=-1), v)
        return self.out(mixed.reshape(batch, length, width))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: attention, then a GELU MLP, each residual."""

    def __init__(self, width: int, num_heads: int, mlp_width: int) -> None:
        super().__init__()
        eps = constants.LAYER_NORM_EPSILON
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attention = CausalSelfAttention(width, num_heads)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.mlp_in = _linear(width, mlp_width)
        self.mlp_out = _linear(mlp_width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp_out(F.gelu(self.mlp_in(self.ln_2(x)), approximate="tanh"))


class CharTransformer(nn.Module):
    """Byte tokens (B, T) -> next-byte logits (B, T, vocab)."""

    def __init__(self) -> None:
        super().__init__()
        width = constants.WIDTH
        self.embed = nn.Embedding(constants.VOCAB_SIZE, width)
        nn.init.normal_(self.embed.weight, std=1.0 / math.sqrt(width))
        self.position = nn.Parameter(
            torch.randn(constants.SEQUENCE_LENGTH, width) * constants.POSITION_INIT_STDDEV)
        self.blocks = nn.ModuleList(
            Block(width, constants.NUM_HEADS, constants.MLP_WIDTH)
            for _ in range(constants.NUM_LAYERS))
        self.ln_final = nn.LayerNorm(width, eps=constants.LAYER_NORM_EPSILON)
        self.head = _linear(width, constants.VOCAB_SIZE)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[:tokens.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_final(x))
