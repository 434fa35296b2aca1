"""Gomes et al.'s traditional system: 173 statistics → StandardScaler → RBF SVM.

`train_and_evaluate(config, workdir)` is the `trainer='svm'` counterpart of
`ser_jax.trainers.neural.train_and_evaluate`: the same corpus loading and
protocol split (`ser_jax.experiment`), the same report dicts
(`metrics.report` + per-utterance predictions), `results.json`, `splits.json`
and run reports in the workdir, so protocols and summaries treat it like the
neural systems.

Per utterance: the 173 means over time of `ser_jax.svm_features` (cached on
disk). With `config.svm.augment`, every TRAINING utterance also gives the
variants of `augment.offline_augment` (noise, time stretch, pitch shift:
×4 data, the paper's C=100 setting); validation and test utterances are never
augmented. (The paper augmented before its 5-fold split, so variants of its
test files were in training: its 76.1 % is optimistic; ours is not.)
`svm.augment_before_split` reproduces the paper's protocol to measure that:
every file's variants join the corpus as utterances of their own before the
protocol splits it (`split_augmented_pool`), leaky under an utterance-level
split and reported as such.

Model selection: with `config.svm.c_grid` each C is fitted on the training
split and the one with the best validation UAR (or `selection.metric`
'val_wa') is kept; otherwise `config.svm.C`. With `refit_on_validation`
the chosen C is then refitted on training + validation (the paper's 80 %
training folds) for the test report; the validation report always comes from
the fit on the training split alone.

Speaker normalisation (`svm.speaker_norm`): every speaker's vectors are
z-scored with that speaker's own mean and std over all its utterances, before
the scaler (statistics from the speaker's unlabelled audio, test speakers
included: transductive, reported as such).

Posteriors: `probability=True` calibrates the SVM with Platt scaling
(scikit-learn's CalibratedClassifierCV, 5-fold: ~5× the fitting time; then
the validation/test 'loss' is the cross-entropy of the utterance
posteriors); by default they are the softmax of the one-vs-rest decision
values (`break_ties=True`, so their argmax is the prediction) and 'loss' is
NaN. The fitted pipeline is saved as `WORKDIR/svm_model.joblib`
(`load_model`, `predict_waveforms`, `load_predictor`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn import calibration, pipeline, preprocessing, svm

from ser_jax import augment
from ser_jax import cli
from ser_jax import evaluate as evaluate_lib
from ser_jax import experiment as experiment_lib
from ser_jax import input_pipeline
from ser_jax import svm_features as svm_features_lib
from ser_jax import trainers
from ser_jax import workdir as workdir_lib

MODEL_FILE = 'svm_model.joblib'
_AUG_VERSION = 1
_MIN_PARALLEL = 16   # augmenting a file takes ~0.3 s; a spawned worker starts in ~3 s


# ---------------------------------------------------------------------------
# Features.

def feature_params(features_cfg) -> dict:
  """The `svm_features` parameters named in the config's `features` block."""
  return {k: features_cfg[k] for k in svm_features_lib.DEFAULTS if k in features_cfg}


def _num_workers(cfg) -> int:
  n = int(cfg.num_workers)
  return n if n > 0 else max(1, os.cpu_count() or 1)


def _cache_root(cfg):
  """(statistics cache dir or False, augmented-statistics cache dir or None)."""
  cache = cfg.cache_dir
  if cache is False or cache == '':
    return False, None
  root = Path(os.path.expanduser(cache)) if cache else svm_features_lib.default_cache_dir().parent
  return root / 'svm_features', root / 'svm_augmented'


def _aug_key(y: np.ndarray, sr: int, aug_cfg: dict, seed: int, params: dict) -> str:
  h = hashlib.sha256()
  h.update(json.dumps({'v': _AUG_VERSION, 'sr': int(sr), 'aug': aug_cfg, 'seed': int(seed),
                       'params': params, 'dtype': y.dtype.str, 'shape': list(y.shape)},
                      sort_keys=True, default=str).encode())
  h.update(np.ascontiguousarray(y).tobytes())
  return h.hexdigest()


def _augmented_vectors(args) -> np.ndarray:
  """Statistics [k, 173] of the offline-augmentation variants of one waveform
  (the 'original' variant excluded: it is the utterance's own vector)."""
  y, sr, aug_cfg, seed, params = args
  variants = [z for name, z in augment.offline_augment([y], sr, aug_cfg, seed=seed)
              if name != 'original']
  if not variants:
    return np.zeros((0, svm_features_lib.NUM_FEATURES), np.float32)
  return np.stack([svm_features_lib.feature_vector(z, sr, **params) for z in variants])


def augmented_features(waveforms, sr: int, aug_cfg: dict, seed: int, params: dict,
                       cache_dir=None, num_workers: int = 1) -> list[np.ndarray]:
  """Per waveform, the statistics of its augmented variants [k, 173].

  Each waveform's noise is seeded from (seed, its audio), so a file gets the
  same variants whichever split or fold it is in, and they are cached on disk.
  """
  aug_cfg = {k: v for k, v in aug_cfg.items() if k != 'include_original'}
  aug_cfg['include_original'] = False
  jobs, paths = [], []
  for y in waveforms:
    y = np.asarray(y)
    file_seed = int(hashlib.sha256(np.ascontiguousarray(y).tobytes()).hexdigest()[:8], 16)
    file_seed = (file_seed + 1_000_003 * int(seed)) % (2 ** 32)
    jobs.append((y, int(sr), aug_cfg, file_seed, params))
    paths.append(svm_features_lib.cache_path(cache_dir, _aug_key(y, sr, aug_cfg, file_seed, params))
                 if cache_dir else None)
  t0 = time.time()
  out = svm_features_lib.cached_map(_augmented_vectors, jobs, paths, num_workers, _MIN_PARALLEL,
                                    what='svm augmented variants')
  logging.info('svm: augmented statistics of %d training files in %.1fs.', len(jobs),
               time.time() - t0)
  return out


# ---------------------------------------------------------------------------
# Fitting and reporting.

def speaker_statistics(x: dict, parts: dict, names) -> dict:
  """{speaker: (mean [D], std [D])} of each speaker's utterance vectors over
  every split (labels unused: transductive, it reads the test speakers' audio)."""
  return _by_speaker(np.concatenate([x[n] for n in names]),
                     np.concatenate([np.asarray(parts[n].speakers) for n in names]))


def _by_speaker(vectors: np.ndarray, speakers: np.ndarray) -> dict:
  return {s: (vectors[speakers == s].mean(axis=0), vectors[speakers == s].std(axis=0))
          for s in np.unique(speakers)}


def speaker_normalize(x: np.ndarray, speakers, by_speaker: dict,
                      min_std: float = 1e-6) -> np.ndarray:
  """Each row z-scored with its speaker's statistics (`speaker_statistics`)."""
  out = np.empty_like(x, dtype=np.float64)
  speakers = np.asarray(speakers)
  for s in np.unique(speakers):
    mean, std = by_speaker[s]
    out[speakers == s] = (x[speakers == s] - mean) / np.maximum(std, min_std)
  return out


# `svm.scaler`: what the statistics go through before the SVM ('none': raw, so
# gamma='scale' is set by the raw variance, dominated by the MFCC-0 and Mel power means).
SCALERS = {'standard': lambda: [preprocessing.StandardScaler()],
           'minmax': lambda: [preprocessing.MinMaxScaler()],
           'none': lambda: []}


def make_classifier(svm_cfg, C: float, seed: int = 0):
  """`svm.scaler` (StandardScaler by default) → SVC (→ Platt-calibrated with
  `probability`), unfitted."""
  clf = svm.SVC(C=float(C), kernel=svm_cfg.kernel, gamma=svm_cfg.gamma,
                decision_function_shape='ovr', break_ties=True,
                class_weight=svm_cfg.class_weight or None,   # '' → none
                cache_size=float(svm_cfg.cache_size_mb), random_state=int(seed))
  if svm_cfg.probability:
    # What SVC(probability=True) did before scikit-learn 1.9 deprecated it.
    clf = calibration.CalibratedClassifierCV(clf, method='sigmoid', ensemble=False)
  # A workdir trained before the field existed used the StandardScaler.
  scaler = svm_cfg.get('scaler', workdir_lib.ADDED_FIELDS['svm.scaler'])
  if scaler not in SCALERS:
    raise cli.UsageError(f'svm.scaler={scaler!r}: expected one of {sorted(SCALERS)}')
  return pipeline.make_pipeline(*SCALERS[scaler](), clf)


def check_config(config) -> None:
  """The SVM trainer's `Trainer.check` (before anything is read or written)."""
  if config.selection.metric not in ('val_uar', 'val_wa'):
    raise cli.UsageError(f'selection.metric={config.selection.metric!r}: val_uar or val_wa '
                         '(what chooses C from svm.c_grid)')
  check_classifier(config.svm)


def check_classifier(svm_cfg) -> None:
  """Fits the configured classifier, for each C it will fit, on 20 made-up points,
  so that a value scikit-learn refuses (kernel 'rbff', C <= 0, gamma 'autoo') is
  one UsageError before the statistics, not a traceback after them."""
  x = np.random.default_rng(0).normal(size=(20, 2))
  y = np.arange(20) % 2
  for C in [float(c) for c in svm_cfg.c_grid] or [float(svm_cfg.C)]:
    try:
      make_classifier(svm_cfg, C).fit(x, y)
    except (ValueError, TypeError) as e:   # scikit-learn's InvalidParameterError is both
      raise cli.UsageError(f'svm: {e}') from e


def posteriors(clf, x: np.ndarray, num_classes: int) -> tuple[np.ndarray, bool]:
  """([N, num_classes] posteriors, whether they are calibrated probabilities)."""
  classes = clf.classes_
  if isinstance(clf[-1], calibration.CalibratedClassifierCV):
    p, calibrated = clf.predict_proba(x), True
  else:
    d = clf.decision_function(x)
    if d.ndim == 1:                 # two classes: one decision value
      d = np.stack([-d, d], axis=1)
    d = d - d.max(axis=1, keepdims=True)
    p, calibrated = np.exp(d) / np.exp(d).sum(axis=1, keepdims=True), False
  out = np.zeros((len(x), num_classes), np.float64)
  out[:, classes] = p               # classes absent from training get 0
  return out, calibrated


def split_report(clf, x, utts, class_names, aggregation: str) -> dict:
  """evaluate.utterance_report of the SVM's posteriors (one vector per utterance)."""
  probs, calibrated = posteriors(clf, x, len(class_names))
  loss = evaluate_lib.cross_entropy(probs, utts.labels) if calibrated else float('nan')
  return evaluate_lib.utterance_report(utts, probs, class_names, aggregation, loss=loss,
                                       num_segments=len(utts))


def _score(report: dict, metric: str) -> float:
  return report['wa'] if metric == 'val_wa' else report['uar']


def split_augmented_pool(config, corpus, params: dict, caches, workers: int):
  """(parts, speakers, {split: vectors}, by_speaker) under the paper's protocol
  for augmented data (Gomes et al.: ×4 files, then the stratified 5-fold split).

  Every file of the corpus and each of its `svm.augmentation` variants is an
  utterance of its own (path 'file#original', 'file#noise', ...; the file's
  label, gender and speaker) before `config.protocol` splits them, so an
  utterance-level split puts variants of a test file in training and
  validation: leaky by design, to measure what the paper's figure owes to it.
  Speaker-grouped protocols keep a speaker's variants together (no leak).
  Test figures count every variant as a test utterance, as the paper's folds
  did. With `speaker_norm`, statistics come from the original files only.
  """
  scfg = config.svm
  sr = int(config.features.sample_rate)
  stats_cache, aug_cache = caches
  utts, speaker_session = corpus or input_pipeline.load_corpus(config.data)
  input_pipeline.check_sample_rate(utts, config.features)
  names = [n for n in augment.offline_variants(scfg.augmentation) if n != 'original']
  if not names:
    raise cli.UsageError('svm.augment_before_split: svm.augmentation makes no variant '
                         '(noise_amplitude, stretch_rate and pitch_steps are all None)')
  orig = svm_features_lib.svm_features(utts.audio, sr, cache_dir=stats_cache,
                                       num_workers=workers, **params)
  variants = augmented_features(utts.audio, sr, scfg.augmentation.to_dict(), config.seed,
                                params, cache_dir=aug_cache, num_workers=workers)
  speakers = np.asarray(utts.speakers)
  by_speaker = None
  if scfg.speaker_norm:   # each speaker's own original files (transductive)
    by_speaker = _by_speaker(np.asarray(orig), speakers)
    orig = speaker_normalize(orig, speakers, by_speaker)
    variants = [speaker_normalize(v, np.full(len(v), spk), by_speaker)
                for v, spk in zip(variants, speakers)]
  k = 1 + len(names)
  vectors = np.concatenate([np.concatenate([np.asarray(o)[None], v])
                            for o, v in zip(orig, variants)])
  pool = utts.take(np.repeat(np.arange(len(utts)), k))   # audio by reference, not copied
  pool.paths = np.asarray([f'{p}#{n}' for p in utts.paths for n in ['original'] + names])
  logging.info('svm: %d files and their %s variants split as %d utterances '
               '(augmented before the split: leaky under an utterance-level protocol).',
               len(utts), ', '.join(names), len(pool))
  parts, split_speakers = input_pipeline.split_corpus(pool, speaker_session, config.protocol)
  row = {p: i for i, p in enumerate(pool.paths)}
  x = {n: vectors[[row[p] for p in part.paths]] for n, part in parts.items()}
  return parts, split_speakers, x, by_speaker


def train_and_evaluate(config, workdir: str, mesh=None, corpus=None) -> dict:
  """Fits the SVM of one fold in `workdir`; returns the results dict of the
  neural trainer ('validation', 'test', 'speakers', 'checkpoint_step' = 0,
  plus 'svm': the chosen C, the grid's validation scores, sizes, timings)."""
  del mesh  # CPU only
  started = time.time()
  workdir = experiment_lib.start_run(config, workdir)
  scfg = config.svm
  class_names = tuple(config.data.classes)
  sr = int(config.features.sample_rate)
  params = feature_params(config.features)
  stats_cache, aug_cache = _cache_root(scfg)
  workers = _num_workers(scfg)
  names = ('train', 'validation', 'test')
  before_split = bool(scfg.augment and scfg.get('augment_before_split', False))
  if scfg.get('augment_before_split', False) and not scfg.augment:
    raise cli.UsageError('svm.augment_before_split=True needs svm.augment=True (it says where '
                           'the augmentation goes: before the split instead of the training files)')
  check_classifier(scfg)   # a bad scaler, kernel, C or gamma fails here, before the statistics
  t0 = time.time()
  if before_split:
    parts, speakers, x, by_speaker = split_augmented_pool(
        config, corpus, params, (stats_cache, aug_cache), workers)
  else:
    parts, speakers = experiment_lib.load_split(config, corpus)
    # Statistics of every utterance (one call, so that it parallelises).
    everything = [a for n in names for a in parts[n].audio]
    stats = svm_features_lib.svm_features(everything, sr, cache_dir=stats_cache,
                                          num_workers=workers, **params)
    bounds = np.cumsum([0] + [len(parts[n]) for n in names])
    x = {n: stats[bounds[i]:bounds[i + 1]] for i, n in enumerate(names)}
    by_speaker = None
    if scfg.speaker_norm:   # transductive: every speaker's own unlabelled statistics
      by_speaker = speaker_statistics(x, parts, names)
      x = {n: speaker_normalize(x[n], parts[n].speakers, by_speaker) for n in names}
  y = {n: np.asarray(parts[n].labels) for n in names}
  timings = {'features_s': round(time.time() - t0, 2)}
  logging.info('svm: statistics of %d utterances in %.1fs.', sum(map(len, x.values())),
               timings['features_s'])
  logging.info('Protocol %s fold %s:\n%s', config.protocol.name, config.protocol.fold,
               input_pipeline.describe(parts, class_names))
  experiment_lib.write_splits(config, workdir, class_names, speakers, parts)

  def training_set(split_names):
    xs = [x[n] for n in split_names]
    ys = [y[n] for n in split_names]
    if scfg.augment and not before_split:   # before the split: already in the pool
      aug_cfg = scfg.augmentation.to_dict()
      t = time.time()
      for n in split_names:
        extra = augmented_features(parts[n].audio, sr, aug_cfg, config.seed, params,
                                   cache_dir=aug_cache, num_workers=workers)
        if by_speaker is not None:   # each variant by its utterance's speaker
          extra = [speaker_normalize(v, np.full(len(v), spk), by_speaker) if len(v) else v
                   for v, spk in zip(extra, parts[n].speakers)]
        xs += [v for v in extra if len(v)]
        ys += [np.full(len(v), label) for v, label in zip(extra, y[n]) if len(v)]
      timings['augment_s'] = round(timings.get('augment_s', 0) + time.time() - t, 2)
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.int64)

  x_train, y_train = training_set(('train',))
  metric = config.selection.metric
  grid = [float(c) for c in scfg.c_grid] or [float(scfg.C)]
  t0 = time.time()
  best = None
  grid_scores = {}
  for c in grid:
    clf = make_classifier(scfg, c, config.seed).fit(x_train, y_train)
    val = split_report(clf, x['validation'], parts['validation'], class_names,
                       config.aggregation)
    grid_scores[str(c)] = {'val_uar': val['uar'], 'val_wa': val['wa']}
    logging.info('svm: C=%g  validation UAR %.4f  WA %.4f', c, val['uar'], val['wa'])
    if best is None or _score(val, metric) > _score(best[1], metric):
      best = (c, val, clf)
  best_c, val_report, clf = best
  timings['fit_s'] = round(time.time() - t0, 2)
  refit = bool(scfg.refit_on_validation)
  if refit:
    t0 = time.time()
    x_refit, y_refit = training_set(('train', 'validation'))
    clf = make_classifier(scfg, best_c, config.seed).fit(x_refit, y_refit)
    timings['refit_s'] = round(time.time() - t0, 2)
  test_report = split_report(clf, x['test'], parts['test'], class_names,
                             config.aggregation)
  joblib.dump({'pipeline': clf, 'classes': list(class_names), 'C': best_c,
               'feature_params': params, 'sample_rate': sr,
               'speaker_norm': bool(scfg.speaker_norm)},
              os.path.join(workdir, MODEL_FILE))

  results = {
      'checkpoint_step': 0, 'speakers': speakers,
      'validation': val_report, 'test': test_report,
      # the splits the test model was fitted on (results.leak_breakdown reads it)
      'fitted_splits': ['train', 'validation'] if refit else ['train'],
      'svm': {'C': best_c, 'grid': grid_scores, 'selection_metric': metric,
              'augmented': bool(scfg.augment), 'augmented_before_split': before_split,
              'refit_on_validation': refit,
              'speaker_norm': bool(scfg.speaker_norm),
              'num_train_vectors': int(len(x_train)), 'timings': timings},
      'wall_seconds': round(time.time() - started, 1),   # this invocation's
  }
  experiment_lib.finish_run(workdir, results, [])   # no learning curves: nothing iterates
  return results


# ---------------------------------------------------------------------------
# Reuse of a fitted model.

def load_model(workdir: str) -> dict:
  """{'pipeline', 'classes', 'C', 'feature_params', 'sample_rate'} of a finished run."""
  path = os.path.join(workdir, MODEL_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'no fitted SVM in {workdir} ({MODEL_FILE}); train it first')
  return joblib.load(path)


def predict_waveforms(workdir_or_model, waveforms, cache_dir=False) -> np.ndarray:
  """Posteriors [N, K] of 16 kHz waveforms (int16 or float) with a run's SVM
  (its workdir, or the model `load_model` returned)."""
  model = (load_model(workdir_or_model) if isinstance(workdir_or_model, (str, os.PathLike))
           else workdir_or_model)
  x = svm_features_lib.svm_features(list(waveforms), model['sample_rate'],
                                    cache_dir=cache_dir, num_workers=1,
                                    **model['feature_params'])
  return posteriors(model['pipeline'], x.astype(np.float64), len(model['classes']))[0]


def load_predictor(config, workdir: str, checkpoint: str | None = None,
                   gender: str | None = None) -> experiment_lib.Predictor:
  """The SVM trainer's predictor: the run's fitted scaler + SVM on the whole
  file's statistics (no segments; `checkpoint` and `gender` do not apply)."""
  del config, checkpoint, gender
  if not workdir:
    raise trainers.ModeNotAvailable('the SVM predicts with a trained run: pass its --workdir')
  model = load_model(workdir)
  if model.get('speaker_norm'):
    raise trainers.ModeNotAvailable(
        f'the SVM in {workdir} normalises each speaker by its own recordings '
        '(svm.speaker_norm); --mode=predict takes files, not speakers, so it cannot '
        'answer for it yet: train with svm.speaker_norm=False to predict')
  return experiment_lib.Predictor(
      tuple(model['classes']), int(model['sample_rate']), None,
      lambda audios: [(p, {}) for p in predict_waveforms(model, audios)], files_per_call=16)
