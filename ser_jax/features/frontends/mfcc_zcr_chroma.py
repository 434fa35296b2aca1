"""'mfcc_zcr_chroma': Ranjan et al.'s input, MFCC, zero-crossing rate and
chroma per frame, concatenated on the feature axis: feats f32 `[B, T, n_mfcc +
1 + n_chroma, 1]` (features 0..n_mfcc-1 MFCC, then ZCR, then chroma C, C#,
..., B), mask bool `[B, T]`.

Fields and defaults: `DEFAULTS`, i.e. those of 'mfcc' (`mfcc.DEFAULTS`: the
same 16 kHz framing) with 20 MFCC (librosa's default n_mfcc), plus n_chroma,
tuning, chroma_norm and zcr_threshold. Ranjan et al. call librosa's mfcc /
zero_crossing_rate / chroma_stft (all n_fft = frame_length 2048, hop 512 at
22.05 kHz).

One STFT serves MFCC and chroma (one matmul with the stacked Mel and chroma
matrices). Per example: MFCC as in 'mfcc';
`librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=
hop_length)` (edge-padded centring, as librosa); `librosa.feature.
chroma_stft(y, n_fft=n_fft, hop_length=hop_length, tuning=tuning)` with a
fixed tuning (librosa's default estimates it per file). T and mask as in
'mfcc'.
"""

from __future__ import annotations

import functools
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ser_jax.features import dsp
from ser_jax.features.frontends import base
from ser_jax.features.frontends import mfcc

Array = jax.Array

NAME = 'mfcc_zcr_chroma'

DEFAULTS = dict(
    mfcc.DEFAULTS, name=NAME, n_mfcc=20, n_chroma=12, tuning=0.0,
    chroma_norm=float('inf'), zcr_threshold=1e-10)

num_frames = base.frame_count


@functools.lru_cache(maxsize=16)
def _mel_chroma_cached(mel_key, chroma_key) -> np.ndarray:
  m = np.concatenate([dsp.mel_filterbank(*mel_key),
                      dsp.chroma_filterbank(*chroma_key)], axis=1)
  m.setflags(write=False)
  return m


def _mel_chroma(p: dict) -> np.ndarray:
  """`[F, n_mels + n_chroma]`: the Mel and chroma matrices side by side."""
  return _mel_chroma_cached(
      base.mel_key(p),
      (int(p['sample_rate']), int(p['n_fft']), int(p['n_chroma']), float(p['tuning'])))


def prepare(p: dict) -> dict:
  mfcc.prepare(p)
  _mel_chroma(p)
  return p


def compute(x: Array, lengths: Optional[Array], p: dict) -> Tuple[Array, Array]:
  """x: float32 waveforms `[B, N]`; lengths: int `[B]` or None; p: a
  prepared config. -> (feats `[B, T, n_mfcc + 1 + n_chroma, 1]`, mask
  `[B, T]`)."""
  x = jnp.asarray(x, jnp.float32)
  t = num_frames(x.shape[-1], p)
  x = base.pad_for_frames(x, p, t)
  power = base.power_from(x, p, t)
  n_mels = int(p['n_mels'])
  both = jnp.matmul(power, jnp.asarray(_mel_chroma(p)), precision=dsp.HIGHEST)
  mf = mfcc.mfcc_of_mel(both[..., :n_mels], p)
  chroma = dsp.normalize_frames(both[..., n_mels:], p['chroma_norm'])
  zcr = dsp.zero_crossing_rate(x, frame_length=int(p['n_fft']),
                               hop_length=int(p['hop_length']),
                               center=bool(p['center']),
                               threshold=float(p['zcr_threshold']))[..., :t]
  if zcr.shape[-1] != t:
    raise ValueError('zero-crossing frames do not line up with the STFT '
                     '(use an even n_fft)')
  feats = jnp.concatenate([mf, zcr[..., None], chroma], axis=-1)
  mask = dsp.frame_mask(base.default_lengths(x, lengths), t, int(p['hop_length']))
  return feats[..., None], mask
