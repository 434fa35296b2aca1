"""Emotion of audio files with a trained checkpoint.

Any container, sample rate and channel count that libsndfile reads: audio is
down-mixed to mono, resampled to 16 kHz with soxr, cut into the model's
segments, and the segment posteriors are aggregated as in evaluation.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator

import jax
import numpy as np
import soundfile as sf
import soxr

from ser_jax import evaluate as evaluate_lib
from ser_jax import input_pipeline
from ser_jax import train as train_lib

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.aiff', '.aif', '.mp3')
GENDERS = ('female', 'male')


def load_audio(path: str, sample_rate: int) -> np.ndarray:
  """int16 mono audio at `sample_rate`; raises ValueError on unusable files."""
  try:
    data, rate = sf.read(path, dtype='float32', always_2d=True)
  except Exception as e:  # libsndfile's errors are of several types
    raise ValueError(f'cannot decode {path}: {e}') from e
  if data.size == 0:
    raise ValueError(f'{path} contains no audio samples')
  mono = data.mean(axis=1)
  if rate != sample_rate:
    mono = soxr.resample(mono, rate, sample_rate)
  return (np.clip(mono, -1.0, 1.0) * 32767.0).astype(np.int16)


def expand_paths(spec: str) -> list[str]:
  """Comma-separated files and/or folders (searched recursively for audio)."""
  out = []
  for item in filter(None, (s.strip() for s in spec.split(','))):
    if os.path.isdir(item):
      for root, _, files in sorted(os.walk(item)):
        out += [os.path.join(root, f) for f in sorted(files)
                if f.lower().endswith(AUDIO_EXTENSIONS)]
    else:
      out.append(item)
  return out


def predict_files(config, workdir: str, paths: Iterable[str], gender: str | None = None,
                  checkpoint: str | None = None) -> Iterator[dict]:
  """Yields one result per path: {'path', 'emotion', 'probabilities', ...} or {'path', 'error'}.

  With a gender-conditioned model and no `gender`, the posteriors of both
  gender inputs are averaged.
  """
  if gender is not None and gender not in GENDERS:
    raise ValueError(f'gender must be one of {GENDERS}, not {gender!r}')
  exp = train_lib.build_experiment(config, with_data=False)
  ckpt, step = resolve_checkpoint(workdir, checkpoint, config.get('selection'))
  state, step = train_lib.restore_for_eval(exp, ckpt, step)
  eval_step = train_lib.make_eval_step(exp)
  sr = config.features.sample_rate
  seg_len = train_lib.segment_samples(config)
  hop = int(round(config.features.segment_hop_seconds * sr))
  genders = [GENDERS.index(gender)] if gender else [0, 1]
  for path in paths:
    try:
      audio = load_audio(path, sr)
    except (ValueError, OSError) as e:
      yield {'path': path, 'error': str(e)}
      continue
    probs = []
    for g in genders:
      utts = input_pipeline.Utterances([audio], np.zeros(1, np.int32), np.full(1, g, np.int32),
                                       np.asarray(['?']), np.asarray([path]))
      seg = input_pipeline.segment(utts, seg_len, hop, config.features.get('max_segments', 0))
      p = evaluate_lib.segment_posteriors(eval_step, state, seg, config.batch_size, exp.mesh)
      probs.append(evaluate_lib.aggregate(p, seg.utterance, 1, config.aggregation)[0])
    probs = np.mean(probs, axis=0)
    probs = probs / probs.sum()  # max-pooled posteriors do not sum to one
    yield {'path': path, 'emotion': exp.class_names[int(probs.argmax())],
           'probabilities': {c: round(float(v), 5) for c, v in zip(exp.class_names, probs)},
           'duration': round(len(audio) / sr, 3), 'segments': int(len(seg)),
           'gender': gender or 'unknown (averaged)', 'checkpoint_step': int(step)}


def resolve_checkpoint(workdir: str | None, checkpoint: str | None, selection=None):
  """(Checkpoints, step or None) from a workdir and/or a checkpoint spec.

  `checkpoint` may be a step number (in workdir/checkpoints), a step folder
  (…/checkpoints/1200) or a checkpoints folder; None means the workdir's
  best checkpoint by `selection` ({'metric', 'mode'}; default validation UAR).
  """
  from ser_jax import checkpoints as checkpoints_lib  # pylint: disable=g-import-not-at-top
  step = None
  directory = os.path.join(workdir, 'checkpoints') if workdir else None
  if checkpoint:
    if checkpoint.isdigit():
      step = int(checkpoint)
    else:
      path = os.path.abspath(os.path.expanduser(checkpoint))
      if not os.path.isdir(path):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
      if os.path.basename(path).isdigit():
        directory, step = os.path.dirname(path), int(os.path.basename(path))
      elif os.path.isdir(os.path.join(path, 'checkpoints')):
        directory = os.path.join(path, 'checkpoints')
      else:
        directory = path
  if not directory or not os.path.isdir(directory):
    raise FileNotFoundError(f'no checkpoints at {directory!r}; train first or pass --checkpoint')
  selection = selection or {}
  ckpt = checkpoints_lib.Checkpoints(directory, async_save=False,
                                     metric=selection.get('metric', 'val_uar'),
                                     mode=selection.get('mode', 'max'))
  if step is not None and step not in ckpt.manager.all_steps():
    raise FileNotFoundError(f'no checkpoint step {step} in {directory}; '
                            f'available: {sorted(ckpt.manager.all_steps())}')
  return ckpt, step
