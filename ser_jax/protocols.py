"""Whole protocols: folds × seeds, one `train_and_evaluate` per run, resumable,
then the paper-style report of the protocol.

`config.protocol.folds`: '' runs the single fold `protocol.fold`; 'all' runs
every fold of the protocol on this corpus; '0,3,7' runs those. `config.seeds`:
() runs `config.seed`; (0, 1, 2, 3, 4) repeats each fold with five seeds (the
headline paper). Run (f, s) trains in `WORKDIR/fold{f:02d}_seed{s}/`; a run
whose `results.json` exists is finished and is not trained again.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
import shlex
import sys

import numpy as np

from ser_jax import cli
from ser_jax import experiment as experiment_lib
from ser_jax import input_pipeline
from ser_jax import metrics as metrics_lib
from ser_jax import monitoring
from ser_jax import reports
from ser_jax import splits as splits_lib
from ser_jax import trainers
from ser_jax import workdir as workdir_lib


_TRANSDUCTIVE = ('(features z-scored per speaker with that speaker\'s own audio, test '
                 'speakers included: transductive) ')


_PER_UTTERANCE = '(features z-scored per file with that file\'s own audio: inductive) '


_LEAKY = ('(every file\'s augmented variants split as utterances of their own, before '
          'the split: a test file\'s variants are trained on) ')


def is_protocol_run(config) -> bool:
  """Whether the config asks for several runs (folds and/or seeds)."""
  return bool(config.protocol.folds) or len(config.seeds) > 1


def plan(config, speaker_session) -> list[tuple[int, int]]:
  """(fold, seed) of every run, in order."""
  spec = str(config.protocol.folds or '')
  n = splits_lib.num_folds(config.protocol, speaker_session)
  if spec == 'all':
    folds = list(range(n))
  elif spec:
    folds = splits_lib.parse_folds(spec)
    bad = [f for f in folds if not 0 <= f < n]
    if bad:
      raise cli.UsageError(f'protocol.folds {bad} out of range: the protocol has {n} folds')
  else:
    folds = [int(config.protocol.fold)]
  seeds = list(config.seeds) or [int(config.seed)]
  return [(f, s) for f in folds for s in seeds]


def run_dir(workdir: str, fold: int, seed: int) -> str:
  return os.path.join(workdir, f'fold{fold:02d}_seed{seed}')


def finished_runs(workdir: str) -> list[tuple[str, str, int, int]]:
  """(name, folder, fold, seed) of a protocol workdir's finished runs (with a
  results.json), in fold then seed order; [] for any other folder."""
  if not os.path.isdir(workdir):
    return []
  out = []
  for name in os.listdir(workdir):
    m = re.fullmatch(r'fold(\d+)_seed(\d+)', name)
    sub = os.path.join(workdir, name)
    if m and os.path.exists(os.path.join(sub, 'results.json')):
      out.append((int(m[1]), int(m[2]), name, sub))
  return [(name, sub, fold, seed) for fold, seed, name, sub in sorted(out)]


def run_config(config, fold: int, seed: int):
  cfg = copy.deepcopy(config)
  with cfg.unlocked():
    cfg.protocol.fold = fold
    cfg.protocol.folds = ''
    cfg.seed = seed
    cfg.seeds = ()
  return cfg


def run_protocol(config, workdir: str, mesh=None) -> dict:
  """Trains every (fold, seed) not yet finished, then writes the protocol report."""
  workdir = os.path.abspath(workdir)
  workdir_lib.write_config(config, workdir)   # the protocol's; each run writes its own
  corpus = experiment_lib.load_corpus(config)   # once for every run
  runs = plan(config, corpus[1])
  logging.info('Protocol %s: %d runs (folds × seeds) in %s', config.protocol.name,
               len(runs), workdir)
  results = {}
  for i, (fold, seed) in enumerate(runs):
    sub = run_dir(workdir, fold, seed)
    done = os.path.join(sub, 'results.json')
    if os.path.exists(done):
      logging.info('[%d/%d] fold %d seed %d: finished before, skipping.', i + 1, len(runs),
                   fold, seed)
      with open(done) as f:
        results[fold, seed] = json.load(f)
      continue
    logging.info('[%d/%d] fold %d seed %d → %s', i + 1, len(runs), fold, seed, sub)
    train = trainers.get(config).function('train')
    results[fold, seed] = train(run_config(config, fold, seed), sub, mesh=mesh, corpus=corpus)
  summary = summarize(config, results)
  if monitoring.is_chief():
    write_protocol_report(config, workdir, results, summary)
  return summary


def summarize(config, results) -> dict:
  """Per-fold means over seeds, and mean ± std over folds and over all runs."""
  folds = sorted({f for f, _ in results})
  rows = []
  for fold in folds:
    runs = [r for (f, _), r in sorted(results.items()) if f == fold]
    uar = [100 * r['test']['uar'] for r in runs]
    wa = [100 * r['test']['wa'] for r in runs]
    rows.append({
        'fold': fold, 'test_speakers': ', '.join(runs[0]['speakers']['test'][:4]) +
        (' …' if len(runs[0]['speakers']['test']) > 4 else ''),
        'runs': len(runs), 'uar_mean': np.mean(uar), 'uar_std': reports.mean_std(uar)[1],
        'wa_mean': np.mean(wa), 'wa_std': reports.mean_std(wa)[1],
        'val_uar_mean': 100 * np.mean([r['validation']['uar'] for r in runs]),
        'uar': uar, 'wa': wa})
  # Each corpus of a union over the folds that test it (mean over seeds first).
  per_corpus = {}
  for fold in folds:
    runs = [r for (f, _), r in sorted(results.items()) if f == fold]
    for c in sorted({c for r in runs for c in r['test'].get('per_corpus', {})}):
      parts = [r['test']['per_corpus'][c] for r in runs if c in r['test'].get('per_corpus', {})]
      entry = per_corpus.setdefault(c, {'folds': [], 'uar': [], 'wa': [], 'num_examples': 0})
      entry['folds'].append(fold)
      entry['uar'].append(100 * np.mean([p['uar'] for p in parts]))
      entry['wa'].append(100 * np.mean([p['wa'] for p in parts]))
      entry['num_examples'] += parts[0]['num_examples']
  for entry in per_corpus.values():
    entry['uar_mean_std'] = reports.mean_std(entry['uar'])
    entry['wa_mean_std'] = reports.mean_std(entry['wa'])
  all_uar = [u for r in rows for u in r['uar']]
  all_wa = [w for r in rows for w in r['wa']]
  ensemble = seed_ensemble(results)
  return {
      'protocol': config.protocol.name, 'folds': folds,
      'seeds': sorted({s for _, s in results}), 'rows': rows,
      'uar_over_folds': reports.mean_std([r['uar_mean'] for r in rows]),
      'wa_over_folds': reports.mean_std([r['wa_mean'] for r in rows]),
      'uar_over_runs': reports.mean_std(all_uar), 'wa_over_runs': reports.mean_std(all_wa),
      'num_runs': len(results), 'per_corpus': per_corpus,
      **({'seed_ensemble': ensemble} if ensemble else {}),
      # Wall time of each run: a neural run's over its sittings (monitoring.RunClock),
      # the SVM's last invocation.
      'wall_seconds_per_run': [r.get('wall_seconds') for _, r in sorted(results.items())],
  }


def headline(summary: dict) -> tuple[str, tuple, tuple]:
  """('folds' | 'seeds', test UAR, test WA) as (mean, std) %: over the folds, or for a
  protocol of one fold, over its seeds (over one fold the std would be 0)."""
  if len(summary['rows']) == 1 and summary['num_runs'] > 1:
    return 'seeds', tuple(summary['uar_over_runs']), tuple(summary['wa_over_runs'])
  return 'folds', tuple(summary['uar_over_folds']), tuple(summary['wa_over_folds'])


def ensemble_report(reports_of_seeds: list[dict]) -> dict:
  """UAR and WA (%) of one split's utterance posteriors averaged over several runs
  (the same utterances: seeds of one fold)."""
  preds = [r['predictions'] for r in reports_of_seeds]
  paths = [p['path'] for p in preds[0]]
  if any([p['path'] for p in other] != paths for other in preds[1:]):
    raise ValueError('seed ensemble: the runs of a fold evaluated different utterances')
  classes = list(reports_of_seeds[0]['classes'])
  probs = np.mean([[p['probabilities'] for p in run] for run in preds], axis=0)
  labels = np.array([classes.index(p['label']) for p in preds[0]])
  pred = probs.argmax(axis=1)
  m = metrics_lib.report(labels, pred, classes)
  corpora = splits_lib.corpus_of(np.asarray([p.get('speaker', '') for p in preds[0]]))
  per_corpus = {}
  if len(set(corpora)) > 1:   # a union: each corpus's UAR, as a run's report has it
    per_corpus = {c: 100 * metrics_lib.report(labels[corpora == c], pred[corpora == c],
                                              classes)['uar'] for c in sorted(set(corpora))}
  return {'uar': 100 * m['uar'], 'wa': 100 * m['wa'], 'labels': labels, 'pred': pred,
          'per_corpus_uar': per_corpus}


def seed_ensemble(results) -> dict | None:
  """Per fold with more than one seed, validation and test UAR/WA of the seeds'
  averaged posteriors, and their mean ± std over those folds (and each corpus's test
  UAR over the folds that test it); None without such a fold."""
  rows, labels, pred, per_corpus = [], [], [], {}
  for fold in sorted({f for f, _ in results}):
    runs = [r for (f, _), r in sorted(results.items()) if f == fold]
    if len(runs) > 1:
      val, test = (ensemble_report([r[split] for r in runs]) for split in ('validation', 'test'))
      rows.append({'fold': fold, 'seeds': len(runs), 'validation_uar': val['uar'],
                   'validation_wa': val['wa'], 'test_uar': test['uar'], 'test_wa': test['wa']})
      labels.append(test['labels'])
      pred.append(test['pred'])
      for c, uar in test['per_corpus_uar'].items():
        per_corpus.setdefault(c, []).append(uar)
      classes = runs[0]['test']['classes']
  if not rows:
    return None
  over = {f'{k}_over_folds': reports.mean_std([r[k] for r in rows])
          for k in ('validation_uar', 'validation_wa', 'test_uar', 'test_wa')}
  pooled = metrics_lib.report(np.concatenate(labels), np.concatenate(pred), classes)
  return {'rows': rows, **over, 'pooled_test_per_class': pooled['per_class'],
          # each corpus's test UAR over the folds that test it, as the runs' per_corpus
          'per_corpus_uar_mean_std': {c: reports.mean_std(v) for c, v in per_corpus.items()}}


def write_protocol_report(config, workdir: str, results, summary: dict):
  run_results = [r for _, r in sorted(results.items())]
  pooled = reports.pooled_report(run_results)
  reports.write_confusion(os.path.join(workdir, 'confusion_test_pooled'), pooled['confusion'],
                          pooled['classes'], 'test, pooled over all runs (row %)')
  reports.write_per_class(os.path.join(workdir, 'per_class_test_pooled.csv'), pooled)
  histories, selected = {}, {}
  for (fold, seed), result in sorted(results.items()):
    path = os.path.join(run_dir(workdir, fold, seed), 'history.jsonl')
    histories[f'f{fold}s{seed}'] = monitoring.History(path).records
    selected[f'f{fold}s{seed}'] = result.get('checkpoint_step')
  reports.write_learning_curves(os.path.join(workdir, 'learning_curves.png'), histories,
                                selected)
  os.makedirs(os.path.join(workdir, 'splits'), exist_ok=True)
  for (fold, seed) in sorted(results):
    src = os.path.join(run_dir(workdir, fold, seed), 'splits.json')
    if os.path.exists(src):
      with open(src) as f:
        split = json.load(f)
      with open(os.path.join(workdir, 'splits', f'fold{fold:02d}.json'), 'w') as f:
        json.dump(split, f, indent=1)
  with open(os.path.join(workdir, 'protocol_results.json'), 'w') as f:
    json.dump({**summary, 'pooled_test': {k: pooled[k] for k in
                                          ('uar', 'wa', 'per_class', 'confusion_pct')}},
              f, indent=1, default=float)
  uf, wf = summary['uar_over_folds'], summary['wa_over_folds']
  ur, wr = summary['uar_over_runs'], summary['wa_over_runs']
  command = ' '.join(shlex.quote(a) for a in sys.argv)
  labels = trainers.labels(config)
  md = [
      f'# {config.model.name} — {config.protocol.name} on {"+".join(input_pipeline.corpus_names(config.data))}',
      '',
      f'- command: `{command}`',
      f'- protocol: `{config.protocol.name}`, folds {summary["folds"]}, seeds {summary["seeds"]} '
      + (_TRANSDUCTIVE if labels['transductive'] else '')
      + (_PER_UTTERANCE if config.get('utterance_norm') else '')
      + (_LEAKY if labels['leaky'] else '') +
      f'({summary["num_runs"]} runs); model selection on validation '
      f'`{config.selection.metric}` only',
      f'- classes: {", ".join(config.data.classes)}; segment posteriors '
      f'{config.aggregation}-pooled per utterance',
      '- config: `config.json` of each run folder; fold assignments in `splits/`',
      '',
      '## Test results per fold (mean ± std over seeds)',
      '',
      reports.fold_table(summary['rows']),
      '',
      f'**Mean over folds: UAR {uf[0]:.2f} ± {uf[1]:.2f} %, WA {wf[0]:.2f} ± {wf[1]:.2f} %** '
      f'(over all {summary["num_runs"]} runs: UAR {ur[0]:.2f} ± {ur[1]:.2f}, '
      f'WA {wr[0]:.2f} ± {wr[1]:.2f}).',
  ]
  ens = summary.get('seed_ensemble')
  if ens:
    md += ['', '## Ensemble of each fold\'s seeds (posteriors averaged)', '',
           '| fold | seeds | validation UAR / WA % | test UAR / WA % |', '|---|---|---|---|']
    md += [f'| {r["fold"]} | {r["seeds"]} | {r["validation_uar"]:.2f} / '
           f'{r["validation_wa"]:.2f} | {r["test_uar"]:.2f} / {r["test_wa"]:.2f} |'
           for r in ens['rows']]
    eu, ew = ens['test_uar_over_folds'], ens['test_wa_over_folds']
    md += ['', f'Mean over those folds: test UAR {eu[0]:.2f} ± {eu[1]:.2f} %, '
           f'WA {ew[0]:.2f} ± {ew[1]:.2f} %.']
  if summary.get('per_corpus'):
    md += ['', '## Each corpus (mean ± std over the folds that test it)', '',
           '| corpus | folds | test utterances | UAR % | WA % |', '|---|---|---|---|---|']
    for c, e in summary['per_corpus'].items():
      md.append(f'| {c} | {", ".join(map(str, e["folds"]))} | {e["num_examples"]} | '
                f'{e["uar_mean_std"][0]:.2f} ± {e["uar_mean_std"][1]:.2f} | '
                f'{e["wa_mean_std"][0]:.2f} ± {e["wa_mean_std"][1]:.2f} |')
  if config.reference:
    md += ['', f'Published figure to compare with: {config.reference}.']
  md += ['', '## Pooled test utterances of all runs', '',
         f'UAR {100 * pooled["uar"]:.2f} %, WA {100 * pooled["wa"]:.2f} %; per class in '
         '`per_class_test_pooled.csv`, confusion in `confusion_test_pooled.{csv,png}`'
         + (', learning curves in `learning_curves.png`.'
            if os.path.exists(os.path.join(workdir, 'learning_curves.png')) else '.')]
  with open(os.path.join(workdir, 'summary.md'), 'w') as f:
    f.write('\n'.join(md) + '\n')
