"""Jitted feature front end: STFT, (log-)Mel, MFCC, ZCR, chroma, deltas, masks
and normalisation, in pure JAX over batches of float32 waveforms, agreeing with
librosa 0.11 (see tests/test_features.py for the parity checks).

Package layout:

  dsp         the librosa-matching transforms (windows, framing, STFT with its
              SPMD FFT rule, power, Mel, log-Mel, dB, DCT / MFCC, ZCR, chroma,
              deltas, frame masks);
  frontends   the registry (`make_frontend`, `num_frames`, `with_num_frames`,
              `frontend_defaults`, CPU chunking) and one module per front end
              (`frontends.logmel_deltas`, `.mfcc`, `.mfcc_zcr_chroma`,
              `.mel_image`), each with its DEFAULTS, eager preparation,
              computation and frame count;
  stats       normalisation statistics (masked, mergeable) and `normalize`.

This package re-exports their public functions.

Layout convention: time comes *before* frequency. `stft` returns
`[..., T, n_fft // 2 + 1]` and `mel_spectrogram` returns `[..., T, n_mels]`,
i.e. the transpose of librosa's `[..., F, T]`.

Numpy constants (window, Mel matrix, Savitzky-Golay coefficients) are built
once per configuration (`functools.lru_cache`) and captured as constants, so
configuration is static: close over it (`make_frontend`) and `jax.jit` the
returned function.

Front ends (`FRONTENDS`, chosen by `cfg.name`; every one returns
`feats f32 [B, T, F, C]` and `mask bool [B, T]`):

  ==================  ==========================================  =====================
  name                features                                    [T, F, C] for 3 s @16k
  ==================  ==========================================  =====================
  ``logmel_deltas``   40 log-Mel + delta + delta-delta (Bhushan)  [300, 40, 3]
  ``mfcc``            40 MFCC (Sen)                               [130, 40, 1]
  ``mfcc_zcr_chroma`` 20 MFCC + ZCR + 12 chroma (Ranjan)          [130, 33, 1]
  ``mel_image``       128x128 dB Mel "image" (Gomes CNN / VGG16)  [128, 128, 1 or 3]
  ==================  ==========================================  =====================

Each front end's fields and defaults are its module's DEFAULTS
(`frontend_defaults(name)`), described in its module docstring.
`num_frames(num_samples, cfg)` gives T, by one rule: cfg.num_frames when set
(the first T centred frames), else the frames centred inside the waveform,
ceil(N / hop_length), i.e. the frames the mask marks valid for a full-length
example (3 s: 300 at hop 160, 130 at hop 372); mel_image: always
image_frames. `with_num_frames(cfg, num_samples)` returns the config with
that T filled in.

On a single CPU device, big batches are computed in chunks of
`cfg.cpu_chunk` (8) examples; under data parallelism the STFT's FFT keeps
its batch split over the devices (`dsp.stft`; `dsp.SPMD_FFT` switches that
partitioning rule off).
"""

from ser_jax.features import dsp
from ser_jax.features import frontends
from ser_jax.features import stats
from ser_jax.features.dsp import Array
from ser_jax.features.dsp import chroma_filterbank
from ser_jax.features.dsp import chroma_from_power
from ser_jax.features.dsp import chroma_stft
from ser_jax.features.dsp import dct_matrix
from ser_jax.features.dsp import delta
from ser_jax.features.dsp import fft_window
from ser_jax.features.dsp import frame_mask
from ser_jax.features.dsp import frame_signal
from ser_jax.features.dsp import log_mel
from ser_jax.features.dsp import mel_filterbank
from ser_jax.features.dsp import mel_spectrogram
from ser_jax.features.dsp import mfcc
from ser_jax.features.dsp import mfcc_from_mel
from ser_jax.features.dsp import normalize_frames
from ser_jax.features.dsp import power_spectrogram
from ser_jax.features.dsp import power_to_db
from ser_jax.features.dsp import stft
from ser_jax.features.dsp import stft_num_frames
from ser_jax.features.dsp import zero_crossing_rate
from ser_jax.features.frontends import FRONTENDS
from ser_jax.features.frontends import frontend_defaults
from ser_jax.features.frontends import make_frontend
from ser_jax.features.frontends import num_frames
from ser_jax.features.frontends import with_num_frames
from ser_jax.features.stats import FeatureStats
from ser_jax.features.stats import StatsAccumulator
from ser_jax.features.stats import accumulate_stats
from ser_jax.features.stats import finalize_stats
from ser_jax.features.stats import merge_stats
from ser_jax.features.stats import normalize
from ser_jax.features.stats import zero_stats
