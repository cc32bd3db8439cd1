"""LibriSpeech's log-mel front end, framework-free: its constants and the mel filter bank.

AlgoPerf's speech models (Conformer and DeepSpeech) take raw 16 kHz audio at int16 scale and
turn it into normalised log-mel features inside the model, identically in JAX and PyTorch (a
port of lingvo's ASR front end):

- samples are zeroed where padded and scaled by 2^-15;
- frames of 401 samples (25 ms plus the pre-emphasis tap) every 160 samples (10 ms), no end
  padding; a frame is padding only when all its samples are (a sliding minimum);
- HTK-flavoured pre-emphasis 0.97 (the first sample times 0.03, then ``x[t] - 0.97 x[t-1]``),
  giving 400 samples; a periodic Hann window of 400; a 512-point real FFT; power spectrum;
- 80 mel bins from 125 to 7,600 Hz (``tf.signal.linear_to_mel_weight_matrix``'s rule, the
  DC bin dropped); log with a floor of 1e-5;
- per-bin normalisation by LibriSpeech means and standard deviations, constants AlgoPerf
  fixes (below, as AlgoPerf states them).

Both frameworks read the window and the filter bank from here, so their features differ only
by float32 rounding.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
FRAME_SIZE = 401  # 25 ms + 1 sample for pre-emphasis
FRAME_STEP = 160  # 10 ms
FFT_SIZE = 512
NUM_MEL_BINS = 80
LOWER_EDGE_HERTZ = 125.0
UPPER_EDGE_HERTZ = 7600.0
PREEMPHASIS = 0.97
INPUT_SCALE = 2.0 ** -15
LOG_FLOOR = 1e-5

LOG_MEL_MEAN = np.array([
    -7.60478163, -7.12062263, -6.88642454, -6.87057686, -6.96677208, -7.1084094, -6.95280266,
    -6.7839942, -6.61955214, -6.48762655, -6.41206598, -6.39404774, -6.42448711, -6.39937115,
    -6.51582718, -6.71379995, -6.84768772, -6.98850012, -6.92213869, -7.14614868, -7.20404005,
    -7.05375528, -7.31403828, -7.12232494, -7.30251408, -7.12121439, -7.24257326, -7.17305374,
    -7.0979414, -7.0887475, -6.98499107, -6.87877321, -6.76027536, -6.63009453, -6.51457691,
    -6.42450571, -6.3565135, -6.31787634, -6.26607704, -6.24683285, -6.28215265, -6.19083881,
    -6.2484355, -6.147264, -6.09247255, -6.01710033, -5.92504025, -5.85358334, -5.82091093,
    -5.81189299, -5.80783749, -5.77146292, -5.74537325, -5.77056551, -5.77656412, -5.78316736,
    -5.79540873, -5.79948235, -5.80234766, -5.80471182, -5.81681824, -5.88448, -5.97271061,
    -6.04446602, -6.12848663, -6.22575855, -6.31574965, -6.39061165, -6.49285984, -6.5498457,
    -6.60543203, -6.6508379, -6.6691761, -6.67268896, -6.68423462, -6.69745779, -6.7547183,
    -6.79491425, -6.86342096, -6.94186544,
], np.float32)
LOG_MEL_STDDEV = np.array([
    3.43532825, 3.59629321, 3.70124722, 3.7369206, 3.75351048, 3.69362926, 3.69224977,
    3.76415229, 3.84197164, 3.89998484, 3.92942405, 3.931741, 3.91395855, 3.90315986,
    3.86919999, 3.81550813, 3.76449704, 3.70991063, 3.69650865, 3.60037661, 3.54932261,
    3.54651213, 3.45003605, 3.47128129, 3.40846109, 3.44081354, 3.41048813, 3.4217639,
    3.43128514, 3.41992092, 3.43058062, 3.43826652, 3.45803666, 3.48179913, 3.49587107,
    3.50367928, 3.5047574, 3.49887347, 3.49305606, 3.48229432, 3.45943046, 3.46127701,
    3.45590639, 3.47554231, 3.49715495, 3.53265572, 3.57051992, 3.59203124, 3.59690738,
    3.59135008, 3.58659315, 3.58268094, 3.58377433, 3.58957911, 3.58193135, 3.58378696,
    3.58611846, 3.58895898, 3.59221482, 3.5939455, 3.58566308, 3.58841133, 3.59210229,
    3.58704901, 3.58065701, 3.57310677, 3.56175327, 3.54980731, 3.55273747, 3.54753661,
    3.53878498, 3.52561784, 3.5031836, 3.49227262, 3.48796463, 3.47255945, 3.45583892,
    3.43518281, 3.42842937, 3.4299171,
], np.float32)


def num_frames(num_samples: int) -> int:
    """Frames of ``num_samples`` samples (no end padding)."""
    return max(0, (num_samples - FRAME_SIZE) // FRAME_STEP + 1)


def window() -> np.ndarray:
    """The periodic Hann window of the 400 pre-emphasised samples, float32."""
    return np.hanning(FRAME_SIZE).astype(np.float32)[:-1]


def _hertz_to_mel(hertz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + hertz / 700.0)


def mel_weights() -> np.ndarray:
    """The (257, 80) float32 matrix from FFT power bins to mel bins: triangles evenly spaced
    in mel between the edges, the DC bin weighted 0 (``tf.signal``'s rule)."""
    num_spectrogram_bins = FFT_SIZE // 2 + 1
    linear = np.linspace(0.0, SAMPLE_RATE / 2, num_spectrogram_bins, dtype=np.float32)[1:]
    bins = _hertz_to_mel(linear.astype(np.float32))[:, None]
    edges = np.linspace(_hertz_to_mel(np.float32(LOWER_EDGE_HERTZ)),
                        _hertz_to_mel(np.float32(UPPER_EDGE_HERTZ)), NUM_MEL_BINS + 2,
                        dtype=np.float32)
    lower, center, upper = edges[:-2][None], edges[1:-1][None], edges[2:][None]
    lower_slopes = (bins - lower) / (center - lower)
    upper_slopes = (upper - bins) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [[1, 0], [0, 0]]).astype(np.float32)


def frame_indices(num_samples: int) -> np.ndarray:
    """(frames, 401) sample indices of each frame."""
    starts = np.arange(num_frames(num_samples)) * FRAME_STEP
    return starts[:, None] + np.arange(FRAME_SIZE)[None, :]
