"""'logmel_deltas': the headline model's input (Bhushan et al.): log-Mel +
delta + delta-delta, feats f32 `[B, T, n_mels, 3]` (channels: static, delta
order 1, delta order 2), mask bool `[B, T]`.

Fields and defaults: `DEFAULTS` (the paper's 25 ms Hamming window and 10 ms
hop, 40 Mel bands up to 8 kHz, natural log of mel + log_eps, delta_width 5 =
HTK's N=2; cpu_chunk: see `make_frontend`).

T (`num_frames`, the rule of `base.frame_count`): cfg.num_frames if set, the
first num_frames centred frames (a 3 s segment at hop 160 has 301 -> first
300; a shorter waveform is zero-padded at the end first); else the frames
centred inside the waveform, ceil(N / hop_length). The log-Mel is truncated
to T *before* the deltas are taken, and each delta is
`librosa.feature.delta` of the static log-Mel over all T frames, padded or
not (as for the paper's zero-padded 3 s chunks); with delta_lengths, each
example's deltas run over its valid frames only (`delta(..., lengths=
mask.sum(1))`, zero on padded frames). Mask: frame t valid iff
t * hop_length < length.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from ser_jax.features import dsp
from ser_jax.features.frontends import base

Array = jax.Array

NAME = 'logmel_deltas'

DEFAULTS = dict(
    name=NAME,
    sample_rate=16000,
    n_fft=512,
    win_length=400,
    hop_length=160,
    window='hamming',
    center=True,
    pad_mode='constant',
    n_mels=40,
    fmin=0.0,
    fmax=8000.0,
    log_eps=1e-6,
    delta_width=5,
    num_frames=300,
    delta_lengths=False,
    cpu_chunk=8,
)

num_frames = base.frame_count


def prepare(p: dict) -> dict:
  base.prepare_stft(p)
  dsp.savgol_parts(int(p['delta_width']), 1)
  dsp.savgol_parts(int(p['delta_width']), 2)
  return p


def compute(x: Array, lengths: Optional[Array], p: dict) -> Tuple[Array, Array]:
  """x: float32 waveforms `[B, N]` (zero-padded past each length); lengths:
  int `[B]` valid samples per row, or None (all valid); p: a prepared config.
  -> (feats `[B, T, n_mels, 3]`, mask `[B, T]`), see the module docstring."""
  x = jnp.asarray(x, jnp.float32)
  t = num_frames(x.shape[-1], p)
  x = base.pad_for_frames(x, p, t)
  mel = dsp.mel_spectrogram(base.power_from(x, p, t), base.mel_matrix(p))
  lm = dsp.log_mel(mel, float(p['log_eps']))  # [B, T, M]
  mask = dsp.frame_mask(base.default_lengths(x, lengths), t, int(p['hop_length']))
  w = int(p['delta_width'])
  dl = jnp.sum(mask, axis=-1) if p['delta_lengths'] else None
  d1 = dsp.delta(lm, width=w, order=1, axis=-2, lengths=dl)
  d2 = dsp.delta(lm, width=w, order=2, axis=-2, lengths=dl)
  feats = jnp.stack([lm, d1, d2], axis=-1)
  return feats, mask
