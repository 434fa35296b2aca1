"""The experiment layer every trainer shares: the run's split and its workdir files.

A trainer's run starts with `start_run` (config.json) and `load_split` (the
corpus split under the protocol), writes `write_splits` (splits.json) and ends
with `finish_run` (the printed figures, reports and results.json); trained
models answer predict through a `Predictor`. The neural systems' model
building and checkpoint restoring are in `ser_jax.neural_experiment`; nothing
here imports Flax, Optax or a training loop.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np

from ser_jax import evaluate as evaluate_lib
from ser_jax import input_pipeline
from ser_jax import monitoring
from ser_jax import reports
from ser_jax import workdir as workdir_lib

GENDERS = ('female', 'male')


def load_corpus(config) -> tuple:
  """The run's corpus (`input_pipeline.load_corpus` of `config.data`), with every
  file's offline variants added as utterances of their own when a neural config
  augments before the split (`augment.offline.before_split`: what Gomes et al.
  did, and perhaps Sen et al.; leaky under an utterance-level protocol, since
  variants of a test file are trained on, and reported as such). Protocols load
  it once for all their runs. The SVM's own variant: trainers/svm.py."""
  utts, speaker_session = input_pipeline.load_corpus(config.data)
  input_pipeline.check_sample_rate(utts, config.features)
  offline = config.augment.offline if 'augment' in config else None
  if offline is not None and offline.enabled and offline.before_split:
    utts = input_pipeline.augment_offline(
        utts, config.augment.offline, config.seed, config.features.sample_rate,
        num_workers=os.cpu_count() or 1, what='corpus (before the split)')
  return utts, speaker_session


def load_split(config, corpus=None) -> tuple[dict, dict]:
  """({split: Utterances}, {split: speakers}) of this run: the corpus (or
  `corpus`, `load_corpus`'s result, already loaded) split under the protocol.
  Every trainer starts here."""
  utts, speaker_session = corpus or load_corpus(config)
  return input_pipeline.split_corpus(utts, speaker_session, config.protocol)


def write_splits(config, workdir: str, class_names, speakers: dict, utterances: dict):
  """WORKDIR/splits.json: the fold assignment of this run (speakers and the
  utterance paths of each split, `utterances` = {split: Utterances}), for
  others to reuse. Every trainer writes it."""
  if monitoring.is_chief():
    evaluate_lib.write_json(os.path.join(workdir, 'splits.json'), {
        'protocol': config.protocol.to_dict(),
        'corpus': '+'.join(input_pipeline.corpus_names(config.data)),
        'classes': list(class_names), 'speakers': speakers,
        'utterances': {k: sorted(map(str, u.paths)) for k, u in utterances.items()}})


def start_run(config, workdir: str) -> str:
  """The absolute workdir, with the run's config.json written: every trainer's first step."""
  workdir = os.path.abspath(workdir)
  workdir_lib.write_config(config, workdir)
  return workdir


def finish_run(workdir: str, results: dict, history: list, splits=('validation', 'test')):
  """The end of every trainer's run (process 0): prints each split's figures
  (the last with its confusion), writes the run's reports and then
  results.json, whose presence marks a finished run (protocols skip it)."""
  if not monitoring.is_chief():
    return
  speakers = results['speakers']
  for split in splits:
    print(evaluate_lib.format_report(f'{split} ({len(speakers[split])} speakers)',
                                     results[split], confusion=split == splits[-1]), flush=True)
  reports.write_run_reports(workdir, results, history)
  evaluate_lib.write_json(os.path.join(workdir, 'results.json'), results)


@dataclasses.dataclass
class Predictor:
  """What a trained run answers predict with: `predictor.many(waveforms)` →
  one (probabilities [K], fields for the answer) per int16 waveform at
  `sample_rate`, batched across the waveforms; `predictor(waveform)` for one.
  Every trainer's `load_predictor` returns one; `ser_jax.predict` reads files
  ahead and hands them over `files_per_call` at a time."""
  classes: tuple
  sample_rate: int
  segment_samples: int | None   # None: the whole file is one input
  many: Callable
  files_per_call: int = 64
  # Set for a model trained with speaker_norm: observe(waveforms) adds them to the
  # statistics of the one speaker the call's files are taken to be, before `many`.
  observe: Callable | None = None

  def __call__(self, audio: np.ndarray) -> tuple[np.ndarray, dict]:
    return self.many([audio])[0]
