"""Emotion of audio files with a trained run (a checkpoint, or the fitted SVM).

Any container, sample rate and channel count that libsndfile reads: audio is
down-mixed to mono, resampled to 16 kHz with soxr, cut into the model's
segments, and the segment posteriors are aggregated as in evaluation.
"""
from __future__ import annotations

import logging
import os
from typing import Iterable, Iterator

import jax
import numpy as np
import soundfile as sf
import soxr

from ser_jax import evaluate as evaluate_lib
from ser_jax import input_pipeline
from ser_jax import train as train_lib
from ser_jax import workdir as workdir_lib

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.aiff', '.aif', '.mp3')
GENDERS = ('female', 'male')


def load_audio(path: str, sample_rate: int) -> np.ndarray:
  """int16 mono audio at `sample_rate`; raises ValueError on unusable files."""
  if not os.path.exists(path):
    raise ValueError(f'{path}: no such file')
  if os.path.isdir(path):
    raise ValueError(f'{path} is a folder without audio files ({", ".join(AUDIO_EXTENSIONS)})')
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
      found = [os.path.join(root, f) for root, _, files in sorted(os.walk(item))
               for f in sorted(files) if f.lower().endswith(AUDIO_EXTENSIONS)]
      out += found or [item]   # a folder without audio: reported as an error
    else:
      out.append(item)
  return out


def predict_files(config, workdir: str, paths: Iterable[str], gender: str | None = None,
                  checkpoint: str | None = None) -> Iterator[dict]:
  """Yields one result per path: {'path', 'emotion', 'probabilities', ...} or {'path', 'error'}.

  With a gender-conditioned model and no `gender`, the posteriors of both
  gender inputs are averaged. A run of the SVM trainer (`config.trainer='svm'`)
  uses its fitted model (svm_model.joblib); `gender` and `checkpoint` do not apply.
  """
  if config.get('trainer', 'neural') == 'svm':
    yield from _predict_files_svm(config, workdir, paths)
    return
  if gender is not None and gender not in GENDERS:
    raise ValueError(f'gender must be one of {GENDERS}, not {gender!r}')
  exp = train_lib.build_experiment(config, with_data=False)
  ckpt, step = resolve_checkpoint(workdir, checkpoint, config.get('selection'))
  state, step = train_lib.restore_for_eval(exp, ckpt, step)
  eval_step = train_lib.make_eval_step(exp)
  sr = config.features.sample_rate
  segmentation = train_lib.segmentation(config)
  genders = [GENDERS.index(gender)] if gender else [0, 1]
  caveat = trained_on_synthetic(config, workdir)
  for path, audio, error in _decoded(paths, sr):
    if error:
      yield {'path': path, 'error': error}
      continue
    warnings = [caveat] if caveat else []
    short = short_clip_warning(len(audio), segmentation[0], sr)
    if short:
      logging.warning('%s: %s', path, short)
      warnings.append(short)
    probs = []
    for g in genders:
      utts = input_pipeline.Utterances([audio], np.zeros(1, np.int32), np.full(1, g, np.int32),
                                       np.asarray(['?']), np.asarray([path]))
      seg = input_pipeline.segment(utts, *segmentation)
      p = evaluate_lib.segment_posteriors(eval_step, state, seg, config.batch_size, exp.mesh)
      probs.append(evaluate_lib.aggregate(p, seg.utterance, 1, config.aggregation)[0])
    probs = np.mean(probs, axis=0)
    probs = probs / probs.sum()  # max-pooled posteriors do not sum to one
    yield {**_result(path, exp.class_names, probs),
           'duration': round(len(audio) / sr, 3), 'segments': int(len(seg)),
           'gender': gender or 'unknown (averaged)', 'checkpoint_step': int(step),
           **({'warnings': warnings} if warnings else {})}


def short_clip_warning(samples: int, segment_samples: int, sample_rate: int) -> str | None:
  """What a clip shorter than one segment gets: how much of its only segment is padding."""
  if samples >= segment_samples:
    return None
  pad = segment_samples - samples
  return (f'clip is {samples / sample_rate:.2f} s, shorter than one '
          f'{segment_samples / sample_rate:.2f} s segment: {pad / sample_rate:.2f} s '
          f'({100 * pad / segment_samples:.0f} %) of its input is zero padding')


SYNTHETIC_CORPUS = 'ser_synthetic'


def trained_on_synthetic(config, workdir: str | None) -> str | None:
  """A caveat (logged once) when the model was trained on the embedded synthetic
  corpus: its answers on real speech mean nothing. The workdir's config.json
  says what it was trained on; else the config given."""
  trained = workdir_lib.read_config(workdir) if workdir else None
  data = (trained or {}).get('data') or config.get('data') or {}
  names = str(data.get('name', '')).split('+')
  if SYNTHETIC_CORPUS not in names:
    return None
  message = (f'this model was trained on the embedded synthetic corpus ({SYNTHETIC_CORPUS}/'
             f'{data.get("builder_config") or "demo"}: synthetic signals, not speech); its '
             'answers on real recordings are not emotion recognition')
  logging.warning('%s.', message[0].upper() + message[1:])
  return message


def _predict_files_svm(config, workdir: str, paths: Iterable[str]) -> Iterator[dict]:
  """predict_files for the SVM trainer: the run's fitted scaler + SVM on the
  whole file's statistics (no segments, no gender input)."""
  from ser_jax import svm  # pylint: disable=g-import-not-at-top
  model = svm.load_model(workdir)
  caveat = trained_on_synthetic(config, workdir)
  for path, audio, error in _decoded(paths, config.features.sample_rate):
    if error:
      yield {'path': path, 'error': error}
      continue
    yield {**_result(path, model['classes'], svm.predict_waveforms(model, [audio])[0]),
           'duration': round(len(audio) / config.features.sample_rate, 3),
           **({'warnings': [caveat]} if caveat else {})}


def _decoded(paths: Iterable[str], sample_rate: int):
  """(path, int16 audio, None) per path, or (path, None, message) for a file
  that cannot be read."""
  for path in paths:
    try:
      yield path, load_audio(path, sample_rate), None
    except (ValueError, OSError) as e:
      yield path, None, str(e)


def _result(path: str, classes, probs) -> dict:
  return {'path': path, 'emotion': classes[int(np.argmax(probs))],
          'probabilities': {c: round(float(v), 5) for c, v in zip(classes, probs)}}


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
