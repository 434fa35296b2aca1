"""'mel_image': Gomes et al.'s 128x128 Mel "image" (CNN / VGG16 input):
feats f32 `[B, image_frames, n_mels, channels]` = `[B, 128 (time), 128 (Mel,
low to high), 1 or 3]`, mask bool `[B, image_frames]`.

Fields and defaults: `DEFAULTS` (win_length None = n_fft, fmax None = sr / 2,
hop_length None derives duration // (image_frames - 1), image_scale 'db' |
'unit', channels 1, or 3 for VGG16: the one channel repeated; cpu_chunk: see
`make_frontend`). There is no num_frames field: T is always image_frames.

The paper loads 2.5 s from 0.5 s (librosa.load(offset=0.5, duration=2.5)),
takes librosa's melspectrogram (128 Mel), draws it in dB and lets Keras
resize the picture to 128x128. We skip the plot and the resize: we take
samples [offset, offset + duration) of each waveform (zero-padded when
shorter), and the hop makes the 2.5 s exactly 128 centred frames (hop 314 at
16 kHz: 1 + 40000 // 314 = 128), i.e. no resampling of the image. Values:
`librosa.power_to_db(S, ref=np.max, top_db=80)` per example, in [-80, 0] dB
('db'), or mapped linearly to [0, 1] as pixel intensity / 255 ('unit': (dB +
top_db) / top_db).

Mask: frame t valid iff t * hop < (length - offset), clipped to [0, duration].
"""

from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp

from ser_jax import cli
from ser_jax.features import dsp
from ser_jax.features.frontends import base

Array = jax.Array

NAME = 'mel_image'

DEFAULTS = dict(
    name=NAME, sample_rate=16000, offset_seconds=0.5,
    duration_seconds=2.5, image_frames=128, n_fft=1536, win_length=None,
    hop_length=314, window='hann', center=True, pad_mode='constant',
    n_mels=128, fmin=0.0, fmax=None, top_db=80.0, amin=1e-10,
    image_scale='db', channels=1, cpu_chunk=8)


def geometry(p: dict) -> Tuple[int, int, int]:
  """(offset samples, duration samples, hop) for frozen config p; raises
  unless the hop gives exactly image_frames centred frames over the duration."""
  sr = int(p['sample_rate'])
  off = int(round(float(p['offset_seconds']) * sr))
  dur = int(round(float(p['duration_seconds']) * sr))
  frames = int(p['image_frames'])
  hop = p['hop_length']
  hop = dur // (frames - 1) if hop is None else int(hop)
  got = dsp.stft_num_frames(dur, int(p['n_fft']), hop, bool(p['center']))
  if got != frames:
    raise cli.UsageError(
        f'mel_image: {dur} samples at hop {hop} give {got} frames, not '
        f'image_frames={frames}; set hop_length=None to derive it')
  return off, dur, hop


def num_frames(num_samples: int, p: dict) -> int:
  """Always image_frames (whatever num_samples; num_frames is not a field)."""
  del num_samples
  geometry(p)
  return int(p['image_frames'])


def prepare(p: dict) -> dict:
  _, _, hop = geometry(p)
  p = dict(p, hop_length=hop)
  if p['image_scale'] not in ('db', 'unit'):
    raise cli.UsageError(f"image_scale must be 'db' or 'unit', got {p['image_scale']!r}")
  if p['image_scale'] == 'unit' and p['top_db'] is None:
    raise cli.UsageError("image_scale='unit' needs top_db")
  base.prepare_stft(p)
  return p


def compute(x: Array, lengths: Optional[Array], p: dict) -> Tuple[Array, Array]:
  """x: float32 waveforms `[B, N]`; lengths: int `[B]` or None; p: a
  prepared config. -> (feats `[B, image_frames, n_mels, channels]`, mask
  `[B, image_frames]`)."""
  off, dur, hop = geometry(p)
  x = jnp.asarray(x, jnp.float32)[..., off:off + dur]
  if x.shape[-1] < dur:
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, dur - x.shape[-1])])
  mel = dsp.mel_spectrogram(base.power_from(x, p), base.mel_matrix(p))
  top_db = p['top_db']
  img = dsp.power_to_db(mel, ref='max', amin=float(p['amin']), top_db=top_db)
  if p['image_scale'] == 'unit':
    img = (img + float(top_db)) / float(top_db)
  ch = int(p['channels'])
  feats = jnp.repeat(img[..., None], ch, axis=-1) if ch > 1 else img[..., None]
  if lengths is None:
    valid = jnp.full(x.shape[:-1], dur, jnp.int32)
  else:
    valid = jnp.clip(jnp.asarray(lengths, jnp.int32) - off, 0, dur)
  mask = dsp.frame_mask(valid, img.shape[-2], hop)
  return feats, mask
