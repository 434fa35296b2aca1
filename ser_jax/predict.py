"""Emotion of audio files with a trained run (a checkpoint, or the fitted SVM).

Any container, sample rate and channel count that libsndfile reads: audio is
down-mixed to mono, resampled to 16 kHz with soxr, cut into the model's
segments, and the segment posteriors are aggregated as in evaluation. A
protocol's workdir predicts with all its finished runs (folds × seeds), their
posteriors averaged: the fold ensemble.
"""
from __future__ import annotations

import collections
import concurrent.futures
import logging
import os
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
import soxr

from ser_jax import cli
from ser_jax import experiment
from ser_jax import input_pipeline
from ser_jax import protocols
from ser_jax import trainers
from ser_jax import workdir as workdir_lib

AUDIO_EXTENSIONS = ('.wav', '.flac', '.ogg', '.aiff', '.aif', '.mp3')


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
  # The builders' decoding (tfds_builders.common.read_audio, which is not imported
  # here: it pulls in TFDS), so that a corpus file predicts as it evaluates.
  mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
  if rate != sample_rate:
    mono = soxr.resample(mono, rate, sample_rate, quality='HQ')
  return np.round(np.clip(mono, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)


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


def load_predictor(config, workdir: str | None, checkpoint: str | None = None,
                   gender: str | None = None):
  """The trainer's `experiment.Predictor` of a run (`trainers.get(config).predictor`);
  for a protocol's workdir, the ensemble of its finished runs (`ensemble_predictor`)."""
  runs = protocols.finished_runs(workdir) if workdir else []
  if runs and checkpoint is not None:
    raise cli.UsageError(
        f'{workdir} is a protocol of {len(runs)} runs, predicted with each run\'s best '
        'checkpoint averaged; for one checkpoint pass that run\'s folder as --workdir')
  load = trainers.get(config).function('predictor')
  if runs:
    return ensemble_predictor(
        [(name, load(protocols.run_config(config, fold, seed), sub, None, gender))
         for name, sub, fold, seed in runs])
  return load(config, workdir, checkpoint, gender)


def ensemble_predictor(named) -> experiment.Predictor:
  """One predictor of several [(name, predictor)] (a protocol's folds × seeds):
  the posteriors of each waveform averaged over the members, each member
  aggregating its own segments; speaker statistics observed by every member."""
  names = [n for n, _ in named]
  members = [p for _, p in named]
  first = members[0]
  for name, p in named[1:]:
    if (p.classes, p.sample_rate, p.segment_samples) != (
        first.classes, first.sample_rate, first.segment_samples):
      raise ValueError(f'cannot ensemble {names[0]} and {name}: their classes, sample rate '
                       'or segments differ')
  observers = [p.observe for p in members if p.observe is not None]

  def observe(audios):
    for member in observers:
      member(audios)

  def many(audios):
    answers = [m.many(audios) for m in members]
    out = []
    for i in range(len(audios)):
      probs = np.mean([np.asarray(a[i][0], np.float64) for a in answers], axis=0)
      fields = {k: v for k, v in answers[0][i][1].items() if k != 'checkpoint_step'}
      steps = [a[i][1].get('checkpoint_step') for a in answers]
      out.append((probs, {**fields, 'ensemble': names,
                          **({'checkpoint_steps': steps} if None not in steps else {})}))
    return out

  logging.info('Predicting with the ensemble of %d runs (%s): posteriors averaged.',
               len(members), ', '.join(names))
  return experiment.Predictor(first.classes, first.sample_rate, first.segment_samples, many,
                              min(p.files_per_call for p in members),
                              observe if observers else None)


def predict_files(config, workdir: str, paths: Iterable[str], gender: str | None = None,
                  checkpoint: str | None = None) -> Iterator[dict]:
  """Yields one result per path, in order: {'path', 'emotion', 'probabilities',
  ...} or {'path', 'error'}.

  The trainer's predictor answers: a network's checkpoint (default: the best;
  with a gender-conditioned model and no `gender`, the posteriors of both
  gender inputs are averaged), or an SVM run's fitted model (svm_model.joblib;
  `gender` and `checkpoint` do not apply). Files are read in threads ahead of
  the computation and predicted `predictor.files_per_call` at a time.
  """
  predictor = load_predictor(config, workdir, checkpoint, gender)
  sr = predictor.sample_rate
  caveats = [c for c in (trained_on_synthetic(config, workdir),) if c]
  paths = list(paths)
  if predictor.observe is not None:   # speaker_norm: a first pass over the files
    good = 0
    for group in _groups(_decoded(paths, sr), predictor.files_per_call):
      audios = [audio for _, audio, error in group if error is None]
      if audios:
        predictor.observe(audios)
        good += len(audios)
    note = (f'this model normalises by speaker: the {good} readable file(s) of this call '
            'were taken as one speaker\'s recordings (give one speaker per call)')
    logging.warning('%s.', note[0].upper() + note[1:])
    caveats.append(note)
  for group in _groups(_decoded(paths, sr), predictor.files_per_call):
    good = [audio for _, audio, error in group if error is None]
    answers = iter(predictor.many(good) if good else ())
    for path, audio, error in group:
      if error:
        yield {'path': path, 'error': error}
        continue
      warnings = list(caveats)
      short = predictor.segment_samples and short_clip_warning(
          len(audio), predictor.segment_samples, sr)
      if short:
        logging.warning('%s: %s', path, short)
        warnings.append(short)
      probs, fields = next(answers)
      yield {**_result(path, predictor.classes, probs), 'duration': round(len(audio) / sr, 3),
             **fields, **({'warnings': warnings} if warnings else {})}


def _groups(items: Iterable, size: int) -> Iterator[list]:
  group = []
  for item in items:
    group.append(item)
    if len(group) == size:
      yield group
      group = []
  if group:
    yield group


SHORT_CLIP_PADDING = 0.05   # the share of a segment's padding that earns a warning


def short_clip_warning(samples: int, segment_samples: int, sample_rate: int) -> str | None:
  """What a clip shorter than one segment gets: how much of its only segment is padding
  (none under 5 % of the segment: a 2.99 s clip in a 3 s segment is not short)."""
  pad = segment_samples - samples
  if pad < SHORT_CLIP_PADDING * segment_samples:
    return None
  return (f'clip is {samples / sample_rate:.2f} s, shorter than one '
          f'{segment_samples / sample_rate:.2f} s segment: {pad / sample_rate:.2f} s '
          f'({100 * pad / segment_samples:.0f} %) of its input is zero padding')


SYNTHETIC_CORPUS = 'ser_synthetic'


def trained_on_synthetic(config, workdir: str | None) -> str | None:
  """A caveat (logged once) when the model was trained on the embedded synthetic
  corpus: its answers on real speech mean nothing. The workdir's config.json
  says what it was trained on; else the config given."""
  trained = workdir_lib.read_config(workdir) if workdir else None
  data = (trained or {}).get('data') or config.data
  if SYNTHETIC_CORPUS not in input_pipeline.corpus_names(data):
    return None
  message = (f'this model was trained on the embedded synthetic corpus ({SYNTHETIC_CORPUS}/'
             f'{data.get("builder_config") or "demo"}: synthetic signals, not speech); its '
             'answers on real recordings are not emotion recognition')
  logging.warning('%s.', message[0].upper() + message[1:])
  return message


def _decoded(paths: Iterable[str], sample_rate: int, ahead: int = 128,
             threads: int = 2) -> Iterator[tuple]:
  """(path, int16 audio, None) per path, or (path, None, message) for a file
  that cannot be read, in order; up to `ahead` files are decoded in `threads`
  threads (libsndfile and soxr release the GIL) while earlier ones are predicted."""
  def read(path):
    try:
      return path, load_audio(path, sample_rate), None
    except (ValueError, OSError) as e:
      return path, None, str(e)

  with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
    pending = collections.deque()
    for path in paths:
      pending.append(pool.submit(read, path))
      if len(pending) >= ahead:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def _result(path: str, classes, probs) -> dict:
  return {'path': path, 'emotion': classes[int(np.argmax(probs))],
          'probabilities': {c: round(float(v), 5) for c, v in zip(classes, probs)}}
