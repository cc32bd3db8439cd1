"""ImageNet's ViT-S/16 in PyTorch: AlgoPerf's module names, the JAX model's function.

Module names as AlgoPerf's PyTorch ViT: ``conv_patch_extract``, ``encoder.net.<i>``
(``layer_norm0``, ``self_attention1`` with ``query``/``key``/``value``/``out``,
``layer_norm2``, ``mlp3`` with ``linear1``, ``glu_linear``, ``linear2``),
``encoder.encoder_norm``, ``map`` (``probe``, ``mha.q_proj``/``kv_proj``/``out_proj``,
``layer_norm``, ``mlp``), ``pre_logits``, ``head``.

Where AlgoPerf's two frameworks differ, this follows its JAX model (see docs/workloads.md):
no dropout on the attention probabilities and none in the MAP head; the MAP attention's
biases start at zero and its key/value kernels, and the probe, are Xavier-uniform over the
fans flax uses ((width, width) per projection; (1, width) for the probe). Initialisation
otherwise as AlgoPerf: attention and MLP weights Xavier-uniform, MLP biases N(0, 1e-6^2),
attention biases zero, the patch embedding and ``pre_logits`` LeCun-normal, ``head`` zero.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from algoperf.workloads.common.pytorch_init import pytorch_default_init


def posemb_sincos_2d(h: int, w: int, width: int, device: torch.device,
                     temperature: float = 10_000.0) -> torch.Tensor:
    """(1, h * w, width) position embeddings, MoCo v3's layout ``[sin x, cos x, sin y, cos
    y]``, as the JAX model's."""
    if width % 4:
        raise ValueError(f"sin-cos position embeddings need a width divisible by 4, got {width}")
    y, x = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device),
                          indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(width // 4, device=device) / (width // 4 - 1))
    y = y.flatten()[:, None] * omega[None, :]
    x = x.flatten()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)[None].float()


def _xavier_uniform(tensor: torch.Tensor, fan_in: int, fan_out: int) -> None:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    nn.init.uniform_(tensor, -bound, bound)


class MlpBlock(nn.Module):
    """Linear to ``mlp_dim``, GELU (tanh), (GLU gate,) dropout, linear back to ``width``."""

    def __init__(self, width: int, mlp_dim: int, use_glu: bool = False) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, mlp_dim)
        self.glu_linear = nn.Linear(mlp_dim, mlp_dim) if use_glu else None
        self.linear2 = nn.Linear(mlp_dim, width)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.normal_(module.bias, std=1e-6)

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        x = F.gelu(self.linear1(x), approximate="tanh")
        if self.glu_linear is not None:
            x = x * self.glu_linear(x)
        x = F.dropout(x, dropout_rate, training=self.training)
        return self.linear2(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention, scaled dot products; no dropout on the probabilities (the
    JAX model has none)."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        for module in (self.query, self.key, self.value, self.out):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        return x.view(n, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = F.scaled_dot_product_attention(
            self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x)))
        return self.out(context.transpose(1, 2).flatten(2))


class Encoder1DBlock(nn.Module):
    """Self-attention and MLP, each in a residual branch with dropout; layer norms before
    the branches, or after the adds with ``use_post_layer_norm``."""

    def __init__(self, width: int, mlp_dim: int, num_heads: int, use_glu: bool = False,
                 use_post_layer_norm: bool = False) -> None:
        super().__init__()
        self.use_post_layer_norm = use_post_layer_norm
        self.layer_norm0 = nn.LayerNorm(width, eps=1e-6)
        self.self_attention1 = SelfAttention(width, num_heads)
        self.layer_norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp3 = MlpBlock(width, mlp_dim, use_glu)

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        def drop(y: torch.Tensor) -> torch.Tensor:
            return F.dropout(y, dropout_rate, training=self.training)

        if self.use_post_layer_norm:
            x = self.layer_norm0(x + drop(self.self_attention1(x)))
            return self.layer_norm2(x + drop(self.mlp3(x, dropout_rate)))
        x = x + drop(self.self_attention1(self.layer_norm0(x)))
        return x + drop(self.mlp3(self.layer_norm2(x), dropout_rate))


class Encoder(nn.Module):
    """``depth`` encoder blocks, then a layer norm (none with post-layer norm)."""

    def __init__(self, depth: int, width: int, mlp_dim: int, num_heads: int,
                 use_glu: bool = False, use_post_layer_norm: bool = False) -> None:
        super().__init__()
        self.net = nn.ModuleList([
            Encoder1DBlock(width, mlp_dim, num_heads, use_glu, use_post_layer_norm)
            for _ in range(depth)])
        self.encoder_norm = None if use_post_layer_norm else nn.LayerNorm(width, eps=1e-6)

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        for block in self.net:
            x = block(x, dropout_rate)
        return x if self.encoder_norm is None else self.encoder_norm(x)


class MultiheadAttention(nn.Module):
    """The MAP head's attention of queries over a memory, with AlgoPerf's names: ``q_proj``,
    ``kv_proj`` (keys then values, stacked), ``out_proj``."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(width, width)
        self.kv_proj = nn.Linear(width, 2 * width)
        self.out_proj = nn.Linear(width, width)
        for weight in (self.q_proj.weight, *self.kv_proj.weight.chunk(2), self.out_proj.weight):
            with torch.no_grad():
                _xavier_uniform(weight, width, width)
        for module in (self.q_proj, self.kv_proj, self.out_proj):
            nn.init.zeros_(module.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        return x.view(n, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        keys, values = self.kv_proj(memory).chunk(2, dim=-1)
        context = F.scaled_dot_product_attention(
            self._heads(self.q_proj(queries)), self._heads(keys), self._heads(values))
        return self.out_proj(context.transpose(1, 2).flatten(2))


class MAPHead(nn.Module):
    """Multihead attention pooling: a learned probe attends over the tokens, then a residual
    MLP; no dropout, as the JAX head."""

    def __init__(self, width: int, mlp_dim: int, num_heads: int) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.empty(1, 1, width))
        with torch.no_grad():
            _xavier_uniform(self.probe, 1, width)  # flax's fans of a (1, 1, width) kernel
        self.mha = MultiheadAttention(width, num_heads)
        self.layer_norm = nn.LayerNorm(width, eps=1e-6)
        self.mlp = MlpBlock(width, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mha(self.probe.expand(x.shape[0], -1, -1), x)
        x = x + self.mlp(self.layer_norm(x), 0.0)
        return x[:, 0]


class ViT(nn.Module):
    """ViT for ``num_classes`` classes (ViT-S/16 by default)."""

    def __init__(self, num_classes: int = 1000, patch_size: int = 16, width: int = 384,
                 depth: int = 12, mlp_dim: int = 1536, num_heads: int = 6,
                 use_glu: bool = False, use_post_layer_norm: bool = False,
                 use_map: bool = False) -> None:
        super().__init__()
        self.conv_patch_extract = nn.Conv2d(3, width, patch_size, stride=patch_size)
        self.encoder = Encoder(depth, width, mlp_dim, num_heads, use_glu, use_post_layer_norm)
        self.map = MAPHead(width, mlp_dim, num_heads) if use_map else None
        self.pre_logits = nn.Linear(width, width)
        self.head = nn.Linear(width, num_classes)
        pytorch_default_init(self.conv_patch_extract)
        pytorch_default_init(self.pre_logits)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, dropout_rate: float = 0.0) -> torch.Tensor:
        x = self.conv_patch_extract(x)
        n, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2) + posemb_sincos_2d(h, w, c, x.device)
        x = F.dropout(x, dropout_rate, training=self.training)
        x = self.encoder(x, dropout_rate)
        x = torch.mean(x, dim=1) if self.map is None else self.map(x)
        return self.head(torch.tanh(self.pre_logits(x)))
