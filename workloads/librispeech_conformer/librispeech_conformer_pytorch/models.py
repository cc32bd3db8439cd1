"""The Conformer of AlgoPerf's ``librispeech_conformer`` in PyTorch, with AlgoPerf's module
and parameter names (``subsample.conv1.kernel``, ``conformers.<i>.mhsa.self_attention.
in_proj.weight``, ``conformers.<i>.conv.bn.scale``) and buffers (``preprocessor.stft.window``,
``preprocessor._normalizer_mean``, ``conformers.<i>.conv.bn.dim``), computing the JAX model's
function (``librispeech_conformer_jax.models``).

Where AlgoPerf's two frameworks differ this port follows the JAX definition: dropout also on
the feed-forward hidden activation; the tanh-approximated GELU in every module of the
``_gelu`` variant; attention rows of padded frames uniform over all frames (flax's masking),
not over the real ones; and 'SAME' padding as flax pads.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algoperf.workloads.common.pytorch_conv import same_padding
from algoperf.workloads.librispeech_conformer import frontend
from algoperf.workloads.librispeech_conformer.spec_augment import (
    draws as spec_augment_draws,
)

DROPOUT_RATE = 0.1


@dataclasses.dataclass(frozen=True)
class ConformerConfig:
    """As the JAX model's ``ConformerConfig``."""

    vocab_size: int = 1024
    encoder_dim: int = 512
    num_attention_heads: int = 8
    num_encoder_layers: int = 4
    convolution_kernel_size: int = 5
    feed_forward_expansion_factor: int = 4
    freq_mask_count: int = 2
    freq_mask_max_bins: int = 27
    time_mask_count: int = 10
    time_mask_max_ratio: float = 0.05
    batch_norm_momentum: float = 0.999
    batch_norm_epsilon: float = 0.001
    use_specaug: bool = True
    attention_temperature: float = 1.0
    activation: str = "swish"
    use_post_layer_norm: bool = True

    def activation_fn(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh") if self.activation == "gelu" else F.silu(x)


def _xavier(module: nn.Linear | nn.Conv1d) -> None:
    nn.init.xavier_uniform_(module.weight)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    _xavier(layer)
    return layer


class _Stft(nn.Module):
    """Holds the window buffer under AlgoPerf's name ``stft.window``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.from_numpy(frontend.window())[None, None, :, None])


class LogMelFrontend(nn.Module):
    """Normalised log-mel features and frame paddings (``frontend`` describes the steps)."""

    def __init__(self) -> None:
        super().__init__()
        self.stft = _Stft()
        self.register_buffer("_normalizer_mean",
                             torch.from_numpy(frontend.LOG_MEL_MEAN)[None, None, :, None])
        self.register_buffer("_normalizer_stddev",
                             torch.from_numpy(frontend.LOG_MEL_STDDEV)[None, None, :, None])
        self._mel_weights = torch.from_numpy(frontend.mel_weights())  # not AlgoPerf's buffer

    def forward(self, audio: torch.Tensor, paddings: torch.Tensor):
        indices = torch.from_numpy(frontend.frame_indices(audio.shape[1])).to(audio.device)
        audio = audio.float() * (1.0 - paddings) * frontend.INPUT_SCALE
        frames = audio[:, indices]
        frame_paddings = paddings[:, indices].amin(dim=-1)
        p = frontend.PREEMPHASIS
        emphasised = torch.cat([frames[..., :1] * (1.0 - p),
                                frames[..., 1:-1] - p * frames[..., :-2]], dim=-1)
        windowed = emphasised * self.stft.window[0, 0, :, 0]
        power = torch.fft.rfft(windowed, frontend.FFT_SIZE, dim=-1).abs() ** 2
        mel = torch.einsum("btf,fn->btn", power, self._mel_weights.to(power.device))
        features = torch.log(torch.clamp(mel, min=frontend.LOG_FLOOR))
        features = ((features - self._normalizer_mean[0, 0, :, 0])
                    / self._normalizer_stddev[0, 0, :, 0])
        return features, frame_paddings


def spec_augment_mask(uniforms, choose_range, max_length, mask_size: int, max_ratio: float):
    """As the JAX ``spec_augment_mask``: the keep-mask (batch, mask_size) of the blocks drawn
    from two uniform tensors (batch, multiplicity)."""
    portion, start_draw = uniforms
    size = (max_length[:, None] * portion).to(torch.int32)
    bound = (max_ratio * choose_range[:, None]).to(torch.int32)
    length = torch.minimum(size, torch.clamp(bound, min=1))
    start = (start_draw * (choose_range[:, None] - length + 1)).to(torch.int32)
    end = start + length - 1
    position = torch.arange(mask_size, device=portion.device)[None, None, :]
    blocks = (position < end[..., None] + 0.1) & (position > start[..., None] - 0.1)
    return 1.0 - (blocks.sum(dim=1) > 0).float()


def spec_augment(config: ConformerConfig, x: torch.Tensor, paddings: torch.Tensor,
                 key: np.ndarray) -> torch.Tensor:
    """The JAX model's ``spec_augment`` with the same draws for the same ``key``
    (``spec_augment.draws``), so both frameworks mask the same frames and bins."""
    c = config
    batch, time, bins = x.shape
    time_portion, time_start, freq_portion, freq_start = (
        torch.from_numpy(d).to(x.device)
        for d in spec_augment_draws(key, batch, c.time_mask_count, c.freq_mask_count))
    lengths = (1 - paddings).sum(dim=-1).to(torch.int32)
    if c.time_mask_count and c.time_mask_max_ratio > 0:
        mask = spec_augment_mask((time_portion, time_start), lengths,
                                 lengths * c.time_mask_max_ratio, time, c.time_mask_max_ratio)
        x = x * mask[:, :, None]
    if c.freq_mask_count and c.freq_mask_max_bins:
        full = torch.full((batch,), bins, device=x.device)
        max_bins = torch.full((batch,), float(c.freq_mask_max_bins), device=x.device)
        mask = spec_augment_mask((freq_portion, freq_start), full, max_bins, bins, 1.0)
        x = x * mask[:, None, :]
    return x


class LayerNorm(nn.Module):
    """Layer norm scaling by ``1 + scale`` (scale initialised to 0), epsilon 1e-6."""

    def __init__(self, dim: int, epsilon: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.epsilon = dim, epsilon
        self.scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), 1 + self.scale, self.bias, self.epsilon)


class Conv2dSubsampling(nn.Module):
    """A 3x3 stride-2 'SAME' (flax's) convolution with bias and ReLU on (batch, channels,
    time, freq); paddings subsampled alongside, padded frames zeroed."""

    def __init__(self, input_channels: int, output_channels: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.empty(output_channels, input_channels, 3, 3))
        nn.init.xavier_uniform_(self.kernel)
        self.bias = nn.Parameter(torch.zeros(output_channels))
        self.register_buffer("paddings_kernel", torch.ones([1, 1, 1]))

    def forward(self, x, paddings):
        top, bottom = same_padding(x.shape[2], 3, 2)
        left, right = same_padding(x.shape[3], 3, 2)
        x = F.conv2d(F.pad(x, (left, right, top, bottom)), self.kernel, self.bias, stride=2)
        x = F.relu(x)
        paddings = F.conv1d(paddings[:, None, :], self.paddings_kernel, stride=2)[:, 0]
        return x * (1.0 - paddings)[:, None, :, None], paddings


class AddPositionalEmbedding(nn.Module):
    """Sines then cosines of positions at timescales 1 to 10,000."""

    def __init__(self, embedding_dim: int) -> None:
        super().__init__()
        half = embedding_dim // 2
        increment = math.log(10_000.0) / max(half - 1, 1)
        inv = np.exp(np.arange(half, dtype=np.float32) * -increment).astype(np.float32)
        self.register_buffer("inv_timescales", torch.from_numpy(inv)[None, None, :])

    def forward(self, seq_length: int) -> torch.Tensor:
        position = torch.arange(seq_length, dtype=torch.float32,
                                device=self.inv_timescales.device)[None, :, None]
        scaled = position * self.inv_timescales
        return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1)


class Subsample(nn.Module):
    def __init__(self, encoder_dim: int, num_bins: int = frontend.NUM_MEL_BINS) -> None:
        super().__init__()
        self.conv1 = Conv2dSubsampling(1, encoder_dim)
        self.conv2 = Conv2dSubsampling(encoder_dim, encoder_dim)
        self.linear = _linear(encoder_dim * math.ceil(math.ceil(num_bins / 2) / 2),
                              encoder_dim)
        self.pos_encode = AddPositionalEmbedding(encoder_dim)

    def forward(self, x, paddings, dropout_rate: float):
        x, paddings = self.conv1(x[:, None], paddings)
        x, paddings = self.conv2(x, paddings)
        batch, channels, time, freq = x.shape
        x = self.linear(x.permute(0, 2, 3, 1).reshape(batch, time, freq * channels))
        x = x + self.pos_encode(time)
        return F.dropout(x, dropout_rate, training=self.training), paddings


class FeedForwardModule(nn.Module):
    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        width = config.encoder_dim * config.feed_forward_expansion_factor
        self.ln = LayerNorm(config.encoder_dim)
        self.linear1 = _linear(config.encoder_dim, width)
        self.linear2 = _linear(width, config.encoder_dim)

    def forward(self, x, padding_mask, dropout_rate: float):
        x = self.config.activation_fn(self.linear1(self.ln(x)))
        x = F.dropout(x, dropout_rate, training=self.training) * padding_mask
        x = self.linear2(x) * padding_mask
        return F.dropout(x, dropout_rate, training=self.training)


class QueryScaler(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(dim))

    def forward(self, query: torch.Tensor) -> torch.Tensor:
        return query * (1.442695041 * F.softplus(self.scale))


class MHSAwithQS(nn.Module):
    """Self-attention with a fused qkv projection and a per-dimension query scale; logits of
    padded query or key frames set to the float minimum, as flax masks."""

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.encoder_dim
        self.in_proj = _linear(dim, 3 * dim)
        self.out_proj = _linear(dim, dim)
        self.qs = QueryScaler(dim // config.num_attention_heads)

    def forward(self, x: torch.Tensor, paddings: torch.Tensor) -> torch.Tensor:
        batch, time, dim = x.shape
        heads = self.config.num_attention_heads
        q, k, v = (t.view(batch, time, heads, -1).transpose(1, 2)
                   for t in self.in_proj(x).split(dim, dim=2))
        q = self.qs(q) / math.sqrt(q.shape[-1])
        logits = q @ k.transpose(-1, -2)
        valid = paddings == 0
        mask = valid[:, None, :, None] & valid[:, None, None, :]
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        out = torch.softmax(logits, dim=-1) @ v
        out = out.transpose(1, 2).reshape(batch, time, dim) * self.config.attention_temperature
        return self.out_proj(out)


class MultiHeadedSelfAttention(nn.Module):
    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.ln = LayerNorm(config.encoder_dim)
        self.self_attention = MHSAwithQS(config)

    def forward(self, x, paddings, dropout_rate: float):
        x = self.self_attention(self.ln(x), paddings)
        return F.dropout(x, dropout_rate, training=self.training)


def masked_batch_norm(x: torch.Tensor, paddings: torch.Tensor, running_mean: torch.Tensor,
                      running_var: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor,
                      momentum: float, epsilon: float, update: bool,
                      use_running_average: bool) -> torch.Tensor:
    """The JAX ``BatchNorm``'s function on (batch, frames, dim): the statistics of the real
    frames (or the running averages), which with ``update`` move the running averages in place
    (``momentum`` keeps the old value), ``(1 + scale)``, padded frames zeroed. Shared by the
    Conformer's and DeepSpeech's modules, which name their parameters differently."""
    mask = (1 - paddings)[:, :, None]
    if not use_running_average:
        count = torch.clamp(mask.sum(), min=1.0)
        mean = (x * mask).sum(dim=(0, 1)) / count
        var = (torch.square(x - mean) * mask).sum(dim=(0, 1)) / count
        if update:
            with torch.no_grad():
                running_mean.mul_(momentum).add_((1 - momentum) * mean.detach())
                running_var.mul_(momentum).add_((1 - momentum) * var.detach())
    else:
        mean, var = running_mean, running_var
    out = (x - mean) * ((1 + scale) / torch.sqrt(var + epsilon)) + bias
    return out * mask


class BatchNorm(nn.Module):
    """Batch norm over the non-padded frames, as the JAX model's: running averages with
    momentum 0.999, ``(1 + scale)``, padded frames zeroed (``masked_batch_norm``)."""

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        dim = config.encoder_dim
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("dim", torch.FloatTensor([dim]))
        self.momentum, self.epsilon = config.batch_norm_momentum, config.batch_norm_epsilon

    def forward(self, x, paddings, update: bool, use_running_average: bool):
        return masked_batch_norm(x, paddings, self.running_mean, self.running_var, self.scale,
                                 self.bias, self.momentum, self.epsilon,
                                 update and self.training, use_running_average)


class ConvolutionBlock(nn.Module):
    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.encoder_dim
        self.ln = LayerNorm(dim)
        self.lin1 = _linear(dim, dim)
        self.lin2 = _linear(dim, dim)
        self.conv1 = nn.Conv1d(dim, dim, config.convolution_kernel_size, groups=dim,
                               padding="same", bias=False)
        _xavier(self.conv1)
        self.bn = BatchNorm(config)
        self.lin3 = _linear(dim, dim)

    def forward(self, x, paddings, norm_mode: tuple[bool, bool], dropout_rate: float):
        x = self.ln(x)
        x = self.lin1(x) * torch.sigmoid(self.lin2(x)) * (1 - paddings)[:, :, None]
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)
        x = self.bn(x, paddings, *norm_mode)
        x = self.lin3(self.config.activation_fn(x))
        return F.dropout(x, dropout_rate, training=self.training)


class ConformerBlock(nn.Module):
    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.ff1 = FeedForwardModule(config)
        self.mhsa = MultiHeadedSelfAttention(config)
        self.conv = ConvolutionBlock(config)
        self.ff2 = FeedForwardModule(config)
        self.ln = LayerNorm(config.encoder_dim) if config.use_post_layer_norm else None

    def forward(self, x, paddings, norm_mode: tuple[bool, bool], dropout_rate: float):
        padding_mask = (1 - paddings)[:, :, None]
        x = x + 0.5 * self.ff1(x, padding_mask, dropout_rate)
        x = x + self.mhsa(x, paddings, dropout_rate)
        x = x + self.conv(x, paddings, norm_mode, dropout_rate)
        x = x + 0.5 * self.ff2(x, padding_mask, dropout_rate)
        return self.ln(x) if self.ln is not None else x


class ConformerEncoderDecoder(nn.Module):
    """Audio and paddings to CTC logits and their paddings, as the JAX ``Conformer``."""

    def __init__(self, config: ConformerConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor = LogMelFrontend()
        self.subsample = Subsample(config.encoder_dim)
        self.conformers = nn.ModuleList(
            [ConformerBlock(config) for _ in range(config.num_encoder_layers)])
        self.ln = LayerNorm(config.encoder_dim)
        self.lin = _linear(config.encoder_dim, config.vocab_size)

    def forward(self, audio, paddings, update_batch_norm: bool | None = None,
                use_running_average_bn: bool | None = None,
                dropout_rate: float = DROPOUT_RATE, specaug_key: np.ndarray | None = None):
        """As the JAX model: batch norm on the batch's statistics unless
        ``use_running_average_bn`` (default: not training), updating the running averages
        when ``update_batch_norm`` (default: training); SpecAugment in training given
        ``specaug_key``."""
        update = self.training if update_batch_norm is None else update_batch_norm
        if use_running_average_bn is None:
            use_running_average_bn = not self.training
        norm_mode = (update, use_running_average_bn)
        x, paddings = self.preprocessor(audio, paddings)
        if self.training and self.config.use_specaug and specaug_key is not None:
            x = spec_augment(self.config, x, paddings, specaug_key)
        x, paddings = self.subsample(x, paddings, dropout_rate)
        for block in self.conformers:
            x = block(x, paddings, norm_mode, dropout_rate)
        return self.lin(self.ln(x)), paddings
