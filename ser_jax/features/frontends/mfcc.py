"""'mfcc': Sen et al.'s input, 40 MFCC per frame: feats f32 `[B, T, n_mfcc, 1]`,
mask bool `[B, T]`.

Fields and defaults: `DEFAULTS` (win_length None = n_fft, fmax None = sr / 2;
cpu_chunk: see `make_frontend`). The paper's ~130 frames for 3 s come from
librosa's defaults at 22.05 kHz (n_fft 2048 = 92.9 ms, hop 512 = 23.2 ms); at
our 16 kHz, hop 372 keeps the hop in time (23.25 ms) and n_fft 1536 (96 ms)
the window, and 3 s give ceil(48000 / 372) = 130 frames.

Each example is `librosa.feature.mfcc(S=power_to_db(melspectrogram(y)
[:, :T]), n_mfcc=n_mfcc)`: dB with ref=1.0, floored at the example's own
max - top_db over its T frames (padded frames included), DCT-II ortho.

T (`num_frames`, the rule of `base.frame_count`): num_frames if set (the first
T centred frames; shorter input is zero-padded at the end first), else the
frames centred inside the waveform, ceil(N / hop_length). Mask: frame t valid
iff t * hop_length < length.
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from ser_jax.features import dsp
from ser_jax.features.frontends import base

Array = jax.Array

NAME = 'mfcc'

DEFAULTS = dict(
    name=NAME, sample_rate=16000, n_fft=1536, win_length=None,
    hop_length=372, window='hann', center=True, pad_mode='constant',
    n_mels=128, fmin=0.0, fmax=None, n_mfcc=40, top_db=80.0, amin=1e-10,
    lifter=0.0, num_frames=None, cpu_chunk=8)

num_frames = base.frame_count


def prepare(p: dict) -> dict:
  base.prepare_stft(p)
  dsp.dct_matrix(int(p['n_mels']), int(p['n_mfcc']), float(p['lifter']))
  return p


def mfcc_of_mel(mel: Array, p: dict) -> Array:
  """Mel power `[..., T, n_mels]` -> `[..., T, n_mfcc]` with p's dB / DCT fields."""
  return dsp.mfcc_from_mel(mel, n_mfcc=int(p['n_mfcc']), top_db=p['top_db'],
                           amin=float(p['amin']), lifter=float(p['lifter']))


def compute(x: Array, lengths: Optional[Array], p: dict) -> Tuple[Array, Array]:
  """x: float32 waveforms `[B, N]`; lengths: int `[B]` or None; p: a
  prepared config. -> (feats `[B, T, n_mfcc, 1]`, mask `[B, T]`)."""
  x = jnp.asarray(x, jnp.float32)
  t = num_frames(x.shape[-1], p)
  x = base.pad_for_frames(x, p, t)
  mel = dsp.mel_spectrogram(base.power_from(x, p, t), base.mel_matrix(p))
  feats = mfcc_of_mel(mel, p)
  mask = dsp.frame_mask(base.default_lengths(x, lengths), t, int(p['hop_length']))
  return feats[..., None], mask
