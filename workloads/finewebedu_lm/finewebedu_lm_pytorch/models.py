"""finewebedu_lm's decoder-only Transformer in PyTorch, with AlgoPerf's parameter names:
``embed_tokens`` (also the output layer),
``layers.<i>`` {``attn_norm``, ``attn`` {``w_qkv`` (q, k, v fused, 1024 -> 3 x 1024),
``w_out``, ``attn_scale``}, ``mlp_norm``, ``mlp`` {``fc1`` (1024 -> 8192), ``fc2``}},
``out_norm``. Architecture and initialisation: ``finewebedu_lm.workload``'s docstring.

Attention is ``torch.nn.functional.scaled_dot_product_attention`` (PyTorch's fused kernels:
flash or memory-efficient attention on a GPU, its C++ kernel on a CPU); ``attention="plain"``
spells it out, for the benchmark that compares them. The rotary angles are recomputed per
call from the sequence length (cheap) rather than held in a buffer, so the module has no
buffers, as AlgoPerf's recorded model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algoperf.workloads.finewebedu_lm import workload as constants

ATTENTION_KINDS = ("fused", "plain")


def rope_angles(length: int, head_width: int, device: torch.device,
                theta: float = constants.ROPE_THETA) -> torch.Tensor:
    """(length, head_width / 2) rotation angles: position t, pair i -> t / theta^(2i / d)."""
    inverse_frequencies = 1.0 / theta ** (
        torch.arange(0, head_width, 2, dtype=torch.float32, device=device) / head_width)
    return torch.outer(torch.arange(length, dtype=torch.float32, device=device),
                       inverse_frequencies)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotates interleaved pairs (x[2i], x[2i+1]) of x (B, T, H, D) by the angles (T, D/2)."""
    pairs = x.unflatten(-1, (-1, 2))
    cos, sin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]
    rotated = torch.stack([pairs[..., 0] * cos - pairs[..., 1] * sin,
                           pairs[..., 1] * cos + pairs[..., 0] * sin], dim=-1)
    return rotated.flatten(-2)


def l2_normalize(x: torch.Tensor, epsilon: float = constants.QK_NORM_EPSILON) -> torch.Tensor:
    """x / (||x|| + epsilon) over the last axis (QK-norm)."""
    return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) + epsilon)


def plain_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax attention at scale 1, (B, H, T, D) in and out, written out."""
    length = q.shape[-2]
    scores = q @ k.transpose(-2, -1)
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    return scores.softmax(dim=-1) @ v


class Attention(nn.Module):
    """Causal self-attention with rotary positions and QK-norm."""

    def __init__(self, width: int = constants.WIDTH, num_heads: int = constants.NUM_HEADS,
                 attention: str = "fused") -> None:
        super().__init__()
        self.width, self.num_heads, self.attention = width, num_heads, attention
        self.w_qkv = nn.Linear(width, 3 * width, bias=False)
        self.w_out = nn.Linear(width, width, bias=False)
        self.attn_scale = nn.Parameter(torch.tensor(constants.ATTN_SCALE_INIT))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        head_width = self.width // self.num_heads
        q, k, v = (part.view(batch, length, self.num_heads, head_width)
                   for part in self.w_qkv(x).split(self.width, dim=-1))
        angles = rope_angles(length, head_width, x.device)
        q, k = l2_normalize(apply_rope(q, angles)), l2_normalize(apply_rope(k, angles))
        q, k, v = (t.transpose(1, 2) for t in (q * self.attn_scale, k, v))
        if self.attention == "fused":
            mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
        else:
            mixed = plain_causal_attention(q, k, v)
        return self.w_out(mixed.transpose(1, 2).reshape(batch, length, self.width))


class Mlp(nn.Module):
    """GLU MLP: width -> 2 x hidden, the first half times the sigmoid of the second, -> width."""

    def __init__(self, width: int = constants.WIDTH, hidden: int = constants.MLP_WIDTH) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, 2 * hidden, bias=False)
        self.fc2 = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.glu(self.fc1(x), dim=-1))


class Block(nn.Module):
    """x + attention(RMSNorm(x)), then x + MLP(RMSNorm(x))."""

    def __init__(self, attention: str = "fused") -> None:
        super().__init__()
        eps = constants.RMS_NORM_EPSILON
        self.attn_norm = nn.RMSNorm(constants.WIDTH, eps=eps)
        self.attn = Attention(attention=attention)
        self.mlp_norm = nn.RMSNorm(constants.WIDTH, eps=eps)
        self.mlp = Mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Tokens (B, T) -> next-token logits (B, T, 50257) from the tied embedding."""

    def __init__(self, vocab_size: int = constants.VOCAB_SIZE,
                 num_layers: int = constants.NUM_LAYERS, attention: str = "fused") -> None:
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        self.embed_tokens = nn.Embedding(vocab_size, constants.WIDTH)
        self.layers = nn.ModuleList(Block(attention) for _ in range(num_layers))
        self.out_norm = nn.RMSNorm(constants.WIDTH, eps=constants.RMS_NORM_EPSILON)
        self._init_weights()

    def _init_weights(self) -> None:
        """Every linear and the embedding N(0, 0.02); the residual outputs (attention's
        ``w_out``, the MLP's ``fc2``) N(0, 0.02 / sqrt(2 * layers))."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                residual = name.endswith(("attn.w_out", "mlp.fc2"))
                std = constants.RESIDUAL_INIT_STDDEV if residual else constants.INIT_STDDEV
                nn.init.normal_(module.weight, mean=0.0, std=std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(tokens)
        for layer in self.layers:
            x = layer(x)
        # The tied output layer: the embedding table itself, so the state_dict holds it once
        # (AlgoPerf's ``lm_head`` shares it and lists it twice there).
        return F.linear(self.out_norm(x), self.embed_tokens.weight)
