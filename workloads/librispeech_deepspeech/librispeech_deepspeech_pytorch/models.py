"""The DeepSpeech of AlgoPerf's ``librispeech_deepspeech`` in PyTorch, with AlgoPerf's module,
parameter and buffer names (``subsample.conv1.kernel``, ``lstms.<i>.lstm.weight_ih_l0_reverse``,
``lstms.<i>.bn_normalization_layer.weight``, ``ffns.<i>.normalization_layer.scale``,
``preprocessor.stft.window``), computing the JAX model's function
(``librispeech_deepspeech_jax.models``).

The front end, SpecAugment, the padding-aware batch norm's arithmetic and the layer norm are
the Conformer's (``librispeech_conformer_pytorch.models``). Each LSTM layer is one
bidirectional ``nn.LSTM`` over packed sequences, as AlgoPerf's; it has two bias vectors per
direction (``bias_ih``, ``bias_hh``) where flax's cell has one, hence AlgoPerf's 12,288 more
parameters here. Initialisation follows the JAX model: xavier-uniform dense and convolution
kernels; per LSTM gate LeCun-normal input kernels, orthogonal recurrent kernels, zero biases
(AlgoPerf's PyTorch leaves ``nn.LSTM`` at PyTorch's uniform default).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algoperf.workloads.common.pytorch_conv import same_padding
from algoperf.workloads.common.pytorch_init import TRUNCATED_NORMAL_STD
from algoperf.workloads.librispeech_conformer import frontend
from algoperf.workloads.librispeech_conformer.librispeech_conformer_pytorch.models import (
    LayerNorm,
    LogMelFrontend,
    masked_batch_norm,
    spec_augment,
)

DROPOUT_RATE = 0.1


@dataclasses.dataclass(frozen=True)
class DeepspeechConfig:
    """As the JAX model's ``DeepspeechConfig``."""

    vocab_size: int = 1024
    encoder_dim: int = 512
    num_lstm_layers: int = 6
    num_ffn_layers: int = 3
    freq_mask_count: int = 2
    freq_mask_max_bins: int = 27
    time_mask_count: int = 10
    time_mask_max_ratio: float = 0.05
    batch_norm_momentum: float = 0.999
    batch_norm_epsilon: float = 0.001
    use_specaug: bool = True
    enable_residual_connections: bool = True
    enable_decoder_layer_norm: bool = True
    use_tanh: bool = False
    layernorm_everywhere: bool = False

    def activation_fn(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) if self.use_tanh else F.relu(x)


def _linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Conv2dSubsampling(nn.Module):
    """A 3x3 stride-2 'SAME' (flax's) convolution with bias and the activation on (batch,
    channels, time, freq); paddings subsampled alongside (every other frame), padded frames
    zeroed. AlgoPerf's DeepSpeech holds no buffer here (its Conformer's has one)."""

    def __init__(self, config: DeepspeechConfig, input_channels: int,
                 output_channels: int) -> None:
        super().__init__()
        self.config = config
        self.kernel = nn.Parameter(torch.empty(output_channels, input_channels, 3, 3))
        nn.init.xavier_uniform_(self.kernel)
        self.bias = nn.Parameter(torch.zeros(output_channels))

    def forward(self, x: torch.Tensor, paddings: torch.Tensor):
        top, bottom = same_padding(x.shape[2], 3, 2)
        left, right = same_padding(x.shape[3], 3, 2)
        x = F.conv2d(F.pad(x, (left, right, top, bottom)), self.kernel, self.bias, stride=2)
        x = self.config.activation_fn(x)
        paddings = paddings[:, ::2]
        return x * (1.0 - paddings)[:, None, :, None], paddings


class Subsample(nn.Module):
    def __init__(self, config: DeepspeechConfig) -> None:
        super().__init__()
        dim = config.encoder_dim
        self.conv1 = Conv2dSubsampling(config, 1, dim)
        self.conv2 = Conv2dSubsampling(config, dim, dim)
        bins = math.ceil(math.ceil(frontend.NUM_MEL_BINS / 2) / 2)  # 80 -> 40 -> 20
        self.lin = _linear(dim * bins, dim)

    def forward(self, x, paddings, dropout_rate: float):
        x, paddings = self.conv1(x[:, None], paddings)
        x, paddings = self.conv2(x, paddings)
        batch, channels, time, freq = x.shape
        x = self.lin(x.permute(0, 2, 3, 1).reshape(batch, time, freq * channels))
        return F.dropout(x, dropout_rate, training=self.training), paddings


class BatchNorm(nn.Module):
    """The Conformer's padding-aware batch norm (``masked_batch_norm``) under AlgoPerf's
    DeepSpeech names: ``weight`` (used as ``1 + weight``), ``bias``, ``running_mean``,
    ``running_var``."""

    def __init__(self, config: DeepspeechConfig) -> None:
        super().__init__()
        dim = config.encoder_dim
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.momentum, self.epsilon = config.batch_norm_momentum, config.batch_norm_epsilon

    def forward(self, x, paddings, update: bool, use_running_average: bool):
        return masked_batch_norm(x, paddings, self.running_mean, self.running_var, self.weight,
                                 self.bias, self.momentum, self.epsilon,
                                 update and self.training, use_running_average)


class _Normalized(nn.Module):
    """A batch norm (``bn_normalization_layer``) or layer norm (``normalization_layer``),
    AlgoPerf's attribute names, applied by ``normalize``."""

    def __init__(self, config: DeepspeechConfig) -> None:
        super().__init__()
        if config.layernorm_everywhere:
            self.normalization_layer = LayerNorm(config.encoder_dim)
        else:
            self.bn_normalization_layer = BatchNorm(config)

    def normalize(self, x, paddings, norm_mode: tuple[bool, bool]) -> torch.Tensor:
        if hasattr(self, "normalization_layer"):
            return self.normalization_layer(x)
        return self.bn_normalization_layer(x, paddings, *norm_mode)


def lecun_normal_(weight: torch.Tensor) -> None:
    """flax's default kernel init on a (out, in) weight: normal truncated at 2 standard
    deviations, variance 1 / in."""
    std = (1.0 / weight.shape[1]) ** 0.5 / TRUNCATED_NORMAL_STD
    nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


class BatchRNN(_Normalized):
    """Normalisation, then a bidirectional ``nn.LSTM`` (half the model width per direction)
    over the packed real frames; outputs at padded frames zero."""

    def __init__(self, config: DeepspeechConfig) -> None:
        super().__init__(config)
        hidden = config.encoder_dim // 2
        self.lstm = nn.LSTM(config.encoder_dim, hidden, bidirectional=True, batch_first=True)
        with torch.no_grad():
            for name, tensor in self.lstm.named_parameters():
                if name.startswith("bias"):
                    nn.init.zeros_(tensor)
                for gate in tensor.split(hidden) if name.startswith("weight") else ():
                    if "_ih_" in name:
                        lecun_normal_(gate)
                    else:
                        nn.init.orthogonal_(gate)

    def forward(self, x, paddings, norm_mode: tuple[bool, bool]) -> torch.Tensor:
        x = self.normalize(x, paddings, norm_mode)
        # An all-padding row (padding the last eval batch) has no frame; packing needs one.
        lengths = (1 - paddings).sum(dim=1).long().clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        outputs, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True,
                                                      total_length=x.shape[1])
        return outputs * (1 - paddings)[:, :, None]


class FeedForwardModule(_Normalized):
    """Normalisation, Linear, activation, mask, dropout."""

    def __init__(self, config: DeepspeechConfig) -> None:
        super().__init__(config)
        self.config = config
        self.lin = _linear(config.encoder_dim, config.encoder_dim)

    def forward(self, x, paddings, norm_mode: tuple[bool, bool], dropout_rate: float):
        x = self.config.activation_fn(self.lin(self.normalize(x, paddings, norm_mode)))
        x = x * (1 - paddings)[:, :, None]
        return F.dropout(x, dropout_rate, training=self.training)


class DeepspeechEncoderDecoder(nn.Module):
    """Audio and paddings to CTC logits and their paddings, as the JAX ``Deepspeech``; the
    call signature is the Conformer's, so the Conformer workload's ``model_fn`` calls it."""

    def __init__(self, config: DeepspeechConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor = LogMelFrontend()
        self.subsample = Subsample(config)
        self.lstms = nn.ModuleList([BatchRNN(config) for _ in range(config.num_lstm_layers)])
        self.ffns = nn.ModuleList(
            [FeedForwardModule(config) for _ in range(config.num_ffn_layers)])
        self.ln = LayerNorm(config.encoder_dim) if config.enable_decoder_layer_norm else None
        self.lin = _linear(config.encoder_dim, config.vocab_size)

    def forward(self, audio, paddings, update_batch_norm: bool | None = None,
                use_running_average_bn: bool | None = None,
                dropout_rate: float = DROPOUT_RATE, specaug_key: np.ndarray | None = None):
        """Batch norm as the Conformer's: the batch's statistics unless
        ``use_running_average_bn`` (default: not training), the running averages updated
        when ``update_batch_norm`` (default: training); SpecAugment in training given
        ``specaug_key``."""
        c = self.config
        update = self.training if update_batch_norm is None else update_batch_norm
        if use_running_average_bn is None:
            use_running_average_bn = not self.training
        norm_mode = (update, use_running_average_bn)
        x, paddings = self.preprocessor(audio, paddings)
        if self.training and c.use_specaug and specaug_key is not None:
            x = spec_augment(c, x, paddings, specaug_key)
        x, paddings = self.subsample(x, paddings, dropout_rate)
        for layer in self.lstms:
            y = layer(x, paddings, norm_mode)
            x = x + y if c.enable_residual_connections else y
        for layer in self.ffns:
            y = layer(x, paddings, norm_mode, dropout_rate)
            x = x + y if c.enable_residual_connections else y
        if self.ln is not None:
            x = self.ln(x)
        return self.lin(x), paddings
