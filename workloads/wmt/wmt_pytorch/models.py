"""wmt's encoder-decoder Transformer in PyTorch, with AlgoPerf's parameter names:
``shared_embedding``, the ``pos_encoder.pe`` buffer (1, 256, 1024), ``encoder.encoder.layers.<i>``
{``self_attn.in_proj`` (3,072 x 1,024: q, k, v), ``self_attn.out_proj``, ``linear1``,
[``linear_glu``,] ``linear2``, ``norm1``, ``norm2``}, ``encoder.encoder.norm``, and
``decoder.decoder.layers.<i>`` {``self_attn``, ``multihead_attn`` {``q_proj``, ``kv_proj``
(2,048 x 1,024: k, v), ``out_proj``}, the MLP, ``norm1``-``norm3``}, ``decoder.decoder.norm``.
Architecture: ``wmt.workload``'s docstring; the JAX twin is ``wmt_jax.models``.

Initialisation as AlgoPerf's PyTorch model: every linear weight Xavier-uniform over its whole
matrix (so the fused q/k/v projection's bound follows 1,024 x 3,072), biases N(0, 1e-6^2),
the embedding N(0, 1). Masks are additive (-1e10 where a query may not look, as AlgoPerf's),
so a query that sees nothing -- a padding position -- attends uniformly, as flax's does. As
in AlgoPerf's PyTorch model, training also drops attention probabilities at the dropout rate
(its JAX model does not).

Decoding keeps per-layer key/value caches in a plain dict (``decode_step``), which
``reorder_cache`` gathers along the batch * beam axis for beam search.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algoperf.workloads.wmt import workload as constants

MASKED = -1e10


def additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, Q, K) booleans -> (B, 1, Q, K) of the activations' ``dtype``: 0 where allowed,
    -1e10 elsewhere. A float64 model needs a float64 mask: torch 2.13's CPU
    ``scaled_dot_product_attention`` accepts a float32 mask beside float64 queries of 16 or
    more positions and then attends where the mask forbids (bf16 and fp16 queries are right
    with a float32 mask, so autocast needs nothing)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device) \
        .masked_fill(~allowed, MASKED).unsqueeze(1)


def pair_mask(queries: Tensor, keys: Tensor) -> Tensor:
    """Where non-padding queries (B, Q) meet non-padding keys (B, K): (B, Q, K)."""
    return (queries > 0).unsqueeze(-1) & (keys > 0).unsqueeze(-2)


def same_segment(queries: Tensor, keys: Tensor) -> Tensor:
    return queries.unsqueeze(-1) == keys.unsqueeze(-2)


def shift_right(x: Tensor) -> Tensor:
    """Targets as decoder inputs: a 0 start token in front, the last token dropped."""
    return F.pad(x, (1, 0))[:, :-1]


class PositionalEncoding(nn.Module):
    """The fixed sinusoidal table of ``wmt_jax.models.sinusoidal_table`` as buffer ``pe``."""

    def __init__(self, width: int, max_length: int = constants.MAX_LENGTH) -> None:
        super().__init__()
        half = width // 2
        frequencies = torch.exp(torch.arange(half) * (-math.log(10_000.0) / (half - 1)))
        angles = torch.arange(max_length).unsqueeze(1) * frequencies
        pe = torch.zeros(1, max_length, width)
        pe[0, :, :half], pe[0, :, half:2 * half] = torch.sin(angles), torch.cos(angles)
        self.register_buffer("pe", pe)

    def forward(self, x: Tensor, positions: Tensor | None = None,
                step: int | None = None) -> Tensor:
        if step is not None:
            return x + self.pe[:, step:step + 1]
        if positions is None:
            return x + self.pe[:, :x.shape[1]]
        return x + self.pe[0, positions]


class MultiheadAttention(nn.Module):
    """Multi-head attention without biases: self-attention (``in_proj``) or attention over
    a memory (``q_proj``, ``kv_proj``); queries scaled by ``attention_temp``."""

    def __init__(self, width: int, num_heads: int, self_attn: bool,
                 attention_temp: float) -> None:
        super().__init__()
        self.num_heads, self.self_attn, self.attention_temp = num_heads, self_attn, \
            attention_temp
        if self_attn:
            self.in_proj = nn.Linear(width, 3 * width, bias=False)
        else:
            self.q_proj = nn.Linear(width, width, bias=False)
            self.kv_proj = nn.Linear(width, 2 * width, bias=False)
        self.out_proj = nn.Linear(width, width, bias=False)

    def _heads(self, x: Tensor) -> Tensor:
        return x.view(*x.shape[:2], self.num_heads, -1).transpose(1, 2)

    def forward(self, x: Tensor, memory: Tensor | None, mask: Tensor | None,
                dropout_rate: float, cache: dict | None = None) -> Tensor:
        """``mask`` additive (B, 1, Q, K). With ``cache`` (decoding one position of self-
        attention), this position's key and value join the cached ones, and the query sees
        only the positions so far."""
        width = x.shape[-1]
        if self.self_attn:
            q, k, v = self.in_proj(x).split(width, dim=-1)
        else:
            q = self.q_proj(x)
            k, v = self.kv_proj(memory).split(width, dim=-1)
        if cache is not None:
            index = cache["index"]
            cache["key"][:, index:index + 1] = k
            cache["value"][:, index:index + 1] = v
            cache["index"] = index + 1
            k, v = cache["key"], cache["value"]
            seen = torch.arange(k.shape[1], device=k.device) <= index
            mask = torch.zeros(1, 1, 1, len(seen), dtype=q.dtype, device=k.device) \
                .masked_fill(~seen, MASKED)
        q = self.attention_temp * self._heads(q)
        mixed = F.scaled_dot_product_attention(
            q, self._heads(k), self._heads(v), attn_mask=mask,
            dropout_p=dropout_rate if self.training else 0.0)
        return self.out_proj(mixed.transpose(1, 2).reshape(*x.shape[:2], width))


class _Layer(nn.Module):
    """The MLP and the residual pattern shared by the encoder and decoder layers."""

    def __init__(self, width: int, mlp_dim: int, activation: str, glu: bool,
                 pre_ln: bool) -> None:
        super().__init__()
        self.linear1 = nn.Linear(width, mlp_dim)
        if glu:
            self.linear_glu = nn.Linear(width, mlp_dim)
        self.linear2 = nn.Linear(mlp_dim, width)
        self.glu, self.pre_ln = glu, pre_ln
        self.activation = {"relu": F.relu, "tanh": torch.tanh}[activation]

    def _mlp(self, x: Tensor, dropout_rate: float) -> Tensor:
        hidden = self.activation(self.linear1(x))
        if self.glu:
            hidden = hidden * self.linear_glu(x)
        hidden = F.dropout(hidden, dropout_rate, self.training)
        return F.dropout(self.linear2(hidden), dropout_rate, self.training)

    def _sublayer(self, x: Tensor, norm: nn.LayerNorm, body, dropout_rate: float) -> Tensor:
        """x + drop(body(LN(x))) pre-LN, LN(x + drop(body(x))) post-LN."""
        if self.pre_ln:
            return x + F.dropout(body(norm(x)), dropout_rate, self.training)
        return norm(x + F.dropout(body(x), dropout_rate, self.training))


class TransformerEncoderLayer(_Layer):
    def __init__(self, width: int, num_heads: int, mlp_dim: int, activation: str, glu: bool,
                 pre_ln: bool, attention_temp: float) -> None:
        super().__init__(width, mlp_dim, activation, glu, pre_ln)
        self.self_attn = MultiheadAttention(width, num_heads, True, attention_temp)
        self.norm1 = nn.LayerNorm(width, eps=constants.LAYER_NORM_EPSILON)
        self.norm2 = nn.LayerNorm(width, eps=constants.LAYER_NORM_EPSILON)

    def forward(self, x: Tensor, mask: Tensor, dropout_rate: float) -> Tensor:
        x = self._sublayer(x, self.norm1, lambda y: self.self_attn(y, None, mask, dropout_rate),
                           dropout_rate)
        # The MLP drops out its own output.
        return self._sublayer(x, self.norm2, lambda y: self._mlp(y, dropout_rate), 0.0)


class TransformerDecoderLayer(_Layer):
    def __init__(self, width: int, num_heads: int, mlp_dim: int, activation: str, glu: bool,
                 pre_ln: bool, attention_temp: float) -> None:
        super().__init__(width, mlp_dim, activation, glu, pre_ln)
        self.self_attn = MultiheadAttention(width, num_heads, True, attention_temp)
        self.multihead_attn = MultiheadAttention(width, num_heads, False, attention_temp)
        self.norm1 = nn.LayerNorm(width, eps=constants.LAYER_NORM_EPSILON)
        self.norm2 = nn.LayerNorm(width, eps=constants.LAYER_NORM_EPSILON)
        self.norm3 = nn.LayerNorm(width, eps=constants.LAYER_NORM_EPSILON)

    def forward(self, x: Tensor, memory: Tensor, self_mask: Tensor | None,
                cross_mask: Tensor, dropout_rate: float, cache: dict | None = None) -> Tensor:
        x = self._sublayer(
            x, self.norm1, lambda y: self.self_attn(y, None, self_mask, dropout_rate, cache),
            dropout_rate)
        x = self._sublayer(
            x, self.norm2, lambda y: self.multihead_attn(y, memory, cross_mask, dropout_rate),
            dropout_rate)
        return self._sublayer(x, self.norm3, lambda y: self._mlp(y, dropout_rate), 0.0)


class LayerStack(nn.Module):
    """``layers`` and, pre-LN, the final ``norm``."""

    def __init__(self, layers: list[nn.Module], width: int, pre_ln: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(width, eps=constants.LAYER_NORM_EPSILON) if pre_ln else None

    def finish(self, x: Tensor) -> Tensor:
        return x if self.norm is None else self.norm(x)


class Encoder(nn.Module):
    def __init__(self, num_layers: int, **layer) -> None:
        super().__init__()
        self.encoder = LayerStack([TransformerEncoderLayer(**layer) for _ in range(num_layers)],
                                  layer["width"], layer["pre_ln"])

    def forward(self, x: Tensor, mask: Tensor, dropout_rate: float) -> Tensor:
        for layer in self.encoder.layers:
            x = layer(x, mask, dropout_rate)
        return self.encoder.finish(x)


class Decoder(nn.Module):
    def __init__(self, num_layers: int, **layer) -> None:
        super().__init__()
        self.decoder = LayerStack([TransformerDecoderLayer(**layer) for _ in range(num_layers)],
                                  layer["width"], layer["pre_ln"])

    def forward(self, y: Tensor, memory: Tensor, self_mask: Tensor | None, cross_mask: Tensor,
                dropout_rate: float, caches: list[dict] | None = None) -> Tensor:
        for index, layer in enumerate(self.decoder.layers):
            y = layer(y, memory, self_mask, cross_mask, dropout_rate,
                      None if caches is None else caches[index])
        return self.decoder.finish(y)


class Transformer(nn.Module):
    """(src, tgt) token rows (B, T) -> logits (B, T, vocab) of every target position given the
    earlier ones; packed rows with positions and segment ids."""

    def __init__(self, vocab_size: int = constants.VOCAB_SIZE, width: int = constants.WIDTH,
                 num_heads: int = constants.NUM_HEADS, num_layers: int = constants.NUM_LAYERS,
                 mlp_dim: int = constants.MLP_WIDTH, activation: str = "relu",
                 glu: bool = False, pre_ln: bool = True, attention_temp: float = 1.0) -> None:
        super().__init__()
        self.pos_encoder = PositionalEncoding(width)
        self.shared_embedding = nn.Embedding(vocab_size, width)
        layer = dict(width=width, num_heads=num_heads, mlp_dim=mlp_dim, activation=activation,
                     glu=glu, pre_ln=pre_ln, attention_temp=attention_temp)
        self.encoder = Encoder(num_layers, **layer)
        self.decoder = Decoder(num_layers, **layer)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.normal_(module.bias, std=1e-6)

    def encode(self, src: Tensor, inputs_positions: Tensor | None = None,
               inputs_segmentation: Tensor | None = None,
               dropout_rate: float = constants.DROPOUT_RATE) -> Tensor:
        allowed = pair_mask(src, src)
        if inputs_segmentation is not None:
            allowed = allowed & same_segment(inputs_segmentation, inputs_segmentation)
        x = self.pos_encoder(self.shared_embedding(src.long()), inputs_positions)
        x = F.dropout(x, dropout_rate, self.training)
        return self.encoder(x, additive_mask(allowed, x.dtype), dropout_rate)

    def _logits(self, y: Tensor) -> Tensor:
        return y @ self.shared_embedding.weight.T / math.sqrt(y.shape[-1])

    def forward(self, src: Tensor, tgt: Tensor, inputs_positions: Tensor | None = None,
                targets_positions: Tensor | None = None,
                inputs_segmentation: Tensor | None = None,
                targets_segmentation: Tensor | None = None,
                dropout_rate: float = constants.DROPOUT_RATE) -> Tensor:
        memory = self.encode(src, inputs_positions, inputs_segmentation, dropout_rate)
        causal = torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool,
                            device=tgt.device).tril()
        self_allowed = pair_mask(tgt, tgt) & causal
        cross_allowed = pair_mask(tgt, src)
        if inputs_segmentation is not None:
            self_allowed = self_allowed & same_segment(targets_segmentation,
                                                       targets_segmentation)
            cross_allowed = cross_allowed & same_segment(targets_segmentation,
                                                         inputs_segmentation)
        y = self.pos_encoder(self.shared_embedding(shift_right(tgt.long())), targets_positions)
        y = F.dropout(y, dropout_rate, self.training)
        y = self.decoder(y, memory, additive_mask(self_allowed, y.dtype),
                         additive_mask(cross_allowed, y.dtype), dropout_rate)
        return self._logits(y)

    def init_cache(self, rows: int, max_length: int, like: Tensor) -> dict:
        """Empty key/value caches of every decoder layer for ``rows`` sequences."""
        width = self.shared_embedding.weight.shape[1]
        zeros = dict(dtype=like.dtype, device=like.device)
        return {"step": 0, "layers": [
            {"key": torch.zeros(rows, max_length, width, **zeros),
             "value": torch.zeros(rows, max_length, width, **zeros), "index": 0}
            for _ in self.decoder.decoder.layers]}

    def decode_step(self, ids: Tensor, memory: Tensor, src: Tensor, cache: dict) -> Tensor:
        """Logits (rows, vocab) of the next token after ``ids`` (rows,), the cache advanced."""
        cross_mask = additive_mask(pair_mask(torch.ones_like(ids[:, None]), src), memory.dtype)
        y = self.pos_encoder(self.shared_embedding(ids[:, None].long()), step=cache["step"])
        cache["step"] += 1
        y = self.decoder(y, memory, None, cross_mask, 0.0, cache["layers"])
        return self._logits(y)[:, 0]


def reorder_cache(cache: dict, rows: Tensor) -> dict:
    """The cache with its sequences gathered to ``rows`` (beam search's reordering)."""
    return {"step": cache["step"], "layers": [
        {"key": layer["key"][rows], "value": layer["value"][rows], "index": layer["index"]}
        for layer in cache["layers"]]}
