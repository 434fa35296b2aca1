"""What the front ends share: config freezing, the frame-count rule, and the
waveform -> power / Mel steps of their STFT.

Every front end module (`logmel_deltas`, `mfcc`, `mfcc_zcr_chroma`,
`mel_image`) has the same interface, which the registry (`frontends/__init__`)
relies on:

  NAME                          its registry name (`cfg.name`);
  DEFAULTS                      the fields it reads from a config, with their
                                defaults (the one place they are written);
                                they include `cpu_chunk` (the batch size the
                                CPU computes at a time; None: all at once), and
                                `num_frames` (None: from the length) where
                                num_frames below is `frame_count`;
  prepare(p) -> p               eager checks and numpy constants for a frozen
                                config p (`freeze(cfg, DEFAULTS)`), so a bad
                                config fails there and tracing does no host
                                work; returns p, completed where it derives a
                                field (mel_image's hop_length);
  compute(x, lengths, p)        -> feats f32 `[B, T, F, C]`, mask bool
                                `[B, T]` for a prepared p;
  num_frames(num_samples, p)    T for waveforms of num_samples samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ser_jax.features import dsp

Array = jax.Array


def config_name(cfg) -> str:
  """`cfg.name` of a dict / ConfigDict / object config ('logmel_deltas' if unset)."""
  if isinstance(cfg, Mapping):
    return cfg.get('name', 'logmel_deltas')
  return getattr(cfg, 'name', 'logmel_deltas')


def freeze(cfg, defaults: dict) -> dict:
  """Plain dict of `defaults`' keys read from cfg (dict / ConfigDict / object);
  other fields of cfg (segment_seconds, ...) are left out."""
  out = {}
  for k, v in defaults.items():
    if isinstance(cfg, Mapping):
      out[k] = cfg.get(k, v)
    else:
      out[k] = getattr(cfg, k, v)
  if 'window' in out:
    out['window'] = dsp.hashable_window(out['window'])
  return out


def frame_count(num_samples: int, p) -> int:
  """The frame-count rule of the STFT front ends: T for `num_samples` samples.

  `p['num_frames']` when set (the first num_frames frames; a shorter waveform
  is zero-padded at the end first); else the frames t with t * hop_length <
  num_samples (with centred framing: those whose centre lies inside the
  signal), i.e. ceil(num_samples / hop_length) frames, exactly those
  `dsp.frame_mask` marks valid for a full-length example. (librosa's last
  frame, centred on sample num_samples when hop_length divides it, is left
  out.) 3 s at 16 kHz: 300 frames at hop 160, 130 at hop 372.
  """
  nf = p['num_frames']
  if nf is not None:
    return int(nf)
  return -(-int(num_samples) // int(p['hop_length']))


def pad_for_frames(x: Array, p: dict, num_frames: int) -> Array:
  """Zero-pads the waveform (at the end) so at least `num_frames` frames
  exist (p: a frozen config)."""
  hop = int(p['hop_length'])
  n_fft = int(p['n_fft'])
  if bool(p['center']):
    need = (int(num_frames) - 1) * hop + n_fft - 2 * (n_fft // 2)
  else:
    need = (int(num_frames) - 1) * hop + n_fft
  n = x.shape[-1]
  if n < need:
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, need - n)])
  return x


def power_from(x: Array, p: dict, max_frames: Optional[int] = None) -> Array:
  """`[B, N]` -> power spectrogram `[B, T, n_fft // 2 + 1]` (first
  `max_frames` frames only, when given)."""
  return dsp.power_spectrogram(dsp.stft(
      x, n_fft=int(p['n_fft']), hop_length=int(p['hop_length']),
      win_length=p['win_length'], window=p['window'],
      center=bool(p['center']), pad_mode=p['pad_mode'],
      max_frames=max_frames))


def mel_key(p: dict) -> tuple:
  """`dsp.mel_filterbank`'s arguments for frozen config p."""
  fmax = p['fmax']
  return (int(p['sample_rate']), int(p['n_fft']), int(p['n_mels']),
          float(p['fmin']), None if fmax is None else float(fmax))


def mel_matrix(p: dict) -> np.ndarray:
  return dsp.mel_filterbank(*mel_key(p))


def prepare_stft(p: dict) -> None:
  """Eager part shared by every front end: the window and the Mel matrix."""
  dsp.fft_window(p['window'], p['win_length'], p['n_fft'])
  mel_matrix(p)


def default_lengths(x: Array, lengths: Optional[Array]) -> Array:
  """lengths, or every example's full length when None."""
  if lengths is None:
    return jnp.full(x.shape[:-1], x.shape[-1], jnp.int32)
  return jnp.asarray(lengths)
