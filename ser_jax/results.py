"""The paper-style results table of finished runs and protocols.

  python -m ser_jax.results RUN_OR_PROTOCOL_DIR... > docs/results.md

One row per workdir: the system (its config file), corpus, protocol, number of
runs (folds × seeds), test WA and UAR (mean ± std over folds for a protocol;
the one test split otherwise), each class's recall (pooled test utterances),
each corpus's UAR for a union, the paper's figure (`config.reference`), the
wall time and machine where the workdir recorded them, and the exact command
(machine paths replaced: `--workdir=runs/NAME`, `--config.data.data_dir=DATA_DIR`).
A folder holding several workdirs may be given instead of each one.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import sys
from typing import Sequence

import numpy as np

from ser_jax import input_pipeline
from ser_jax import protocols
from ser_jax import trainers

_SHORT = {'neutral': 'neu', 'calm': 'cal', 'happy': 'hap', 'sad': 'sad', 'angry': 'ang',
          'fearful': 'fea', 'disgust': 'dis', 'surprised': 'sur', 'other': 'oth'}


def _json(path: str):
  with open(path) as f:
    return json.load(f)


def _commands(workdir: str) -> list[dict]:
  path = os.path.join(workdir, 'commands.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def _flag_args(command: str) -> list[str]:
  """The command's words with absl's `--flag value` written `--flag=value`."""
  words, out = shlex.split(command), []
  i = 0
  while i < len(words):
    arg = words[i]
    if (arg.startswith('--') and '=' not in arg and i + 1 < len(words)
        and not words[i + 1].startswith('-')):
      arg, i = f'{arg}={words[i + 1]}', i + 1
    out.append(arg)
    i += 1
  return out


def portable_command(command: str, workdir: str) -> str:
  """The command with this machine's paths replaced (workdir, data dir, python)."""
  out = []
  for arg in _flag_args(command):
    if arg.startswith('--workdir='):
      arg = f'--workdir=runs/{os.path.basename(os.path.normpath(workdir))}'
    elif arg.startswith('--config.data.data_dir='):
      arg = '--config.data.data_dir=DATA_DIR'
    elif re.match(r'^(/\S*/)?python[0-9.]*$', arg):
      arg = 'python'
    out.append(arg)
  return ' '.join(_shell_word(a) for a in out)


def _shell_word(word: str) -> str:
  """`word` as a shell reads it back: bare when safe, in double quotes when it holds
  single quotes only (readable: "--config.data.classes=('a','b')"), else shlex.quote."""
  if shlex.quote(word) == word:
    return word
  if "'" in word and not any(c in word for c in '"$`\\!'):
    return f'"{word}"'
  return shlex.quote(word)


def _config_file(command: str) -> str:
  found = [a.split('=', 1)[1] for a in _flag_args(command) if a.startswith('--config=')]
  return found[0] if found else '?'


def _paper(reference: str | None) -> str:
  """The paper column: the reference up to its first parenthesis, skipping leading
  parentheses that come before any figure ('Model 1 (attention): UAR 59.4 % (…')."""
  text = reference or '—'
  while ' (' in text and '%' not in text.split(' (')[0]:
    dropped = re.sub(r' \([^)]*\)', '', text, count=1)
    if dropped == text:
      break
    text = dropped
  return text.split(' (')[0]


def _protocol(cfg: dict) -> str:
  text = _protocol_name(cfg)
  labels = trainers.labels(cfg)
  if labels['transductive']:
    text += '; speaker-normalised (transductive)'
  if cfg.get('utterance_norm'):
    text += '; utterance-normalised'
  if labels['leaky']:
    text += '; augmented before the split (leaky: variants of test files are trained on)'
  rate = (cfg.get('features') or {}).get('sample_rate')
  if rate and int(rate) != 16_000:
    text += f'; audio at {int(rate):,} Hz'
  svm = cfg.get('svm') or {}
  if svm.get('scaler', 'standard') != 'standard':   # the SVM's input, as a setting
    text += f'; SVM on {SVM_SCALERS.get(svm["scaler"], svm["scaler"])} statistics'
  if svm.get('gamma', 'scale') != 'scale':
    text += f'; gamma={svm["gamma"]}'
  return text


SVM_SCALERS = {'none': 'unscaled', 'minmax': 'min-max-scaled'}


def _protocol_name(cfg: dict) -> str:
  p = cfg.get('protocol') or {}
  name = p.get('name', '?')
  if name in ('group_kfold', 'stratified_kfold'):
    folds = str(p.get('folds') or '')
    one = (f', fold {p.get("fold", 0)} only' if not folds   # a single run
           else '' if folds == 'all' else f', fold{"s" * ("," in folds)} {folds} only')
    return f'{name} (k={p.get("k", 5)}, split_seed {p.get("split_seed", 0)}{one})'
  if name in ('group_split', 'stratified_split'):
    fr = p.get('fractions')
    return f'{name} ({"/".join(str(round(100 * f)) for f in fr)})' if fr else name
  if name == 'cross_corpus' and p.get('test'):
    return f'cross_corpus (test {"+".join(p["test"])})'
  return name


def _recalls(per_class: dict, classes: Sequence[str]) -> str:
  parts = []
  for c in classes:
    r = per_class.get(c)
    if r is None:
      continue
    recall = r['recall'] if isinstance(r, dict) else r
    support = r.get('support', 1) if isinstance(r, dict) else 1
    if support:
      parts.append(f'{_SHORT.get(c, c[:3])} {100 * recall:.0f}')
  return ' '.join(parts)


def _minutes(seconds) -> str:
  if not seconds:
    return '—'
  return f'{seconds / 60:.1f}' if seconds >= 6 else '< 0.1'


def row(workdir: str) -> dict:
  """The table row of one finished run or protocol workdir."""
  cfg = _json(os.path.join(workdir, 'config.json'))
  commands = [c for c in _commands(workdir) if c.get('mode') == 'train']
  command = commands[0]['command'] if commands else '?'
  machine = next((f'{c["cpu"]}, {c["cores"]} cores' for c in commands if c.get('cpu')), '—')
  classes = list(cfg['data']['classes'])
  protocol_path = os.path.join(workdir, 'protocol_results.json')
  if os.path.exists(protocol_path):
    res = _json(protocol_path)
    _, uar, wa = protocols.headline(res)   # one fold's seeds: their spread
    if res['num_runs'] == 1:   # one fold, one seed: no spread to show
      uar, wa = (uar[0], None), (wa[0], None)
    per_class = res['pooled_test']['per_class']
    per_corpus = {c: v['uar_mean_std'] for c, v in (res.get('per_corpus') or {}).items()}
    if cfg['protocol'].get('name') == 'cross_corpus':   # a fold tests one whole corpus
      per_corpus = {r['test_speakers'].split(':')[0]: (r['uar_mean'], None) for r in res['rows']}
    runs = f'{len(res["rows"])} × {len(res["seeds"])}'
    times = [t for t in res.get('wall_seconds_per_run') or () if t]
    seconds = float(np.mean(times)) if times else None
  else:
    res = _json(os.path.join(workdir, 'results.json'))
    test = res['test']
    wa, uar = (100 * test['wa'], None), (100 * test['uar'], None)
    per_class = test['per_class']
    per_corpus = {c: (100 * v['uar'], None) for c, v in (test.get('per_corpus') or {}).items()}
    runs = '1'
    seconds = res.get('wall_seconds')
  return {
      'system': _config_file(command), 'corpus': '+'.join(input_pipeline.corpus_names(cfg['data'])),
      'protocol': _protocol(cfg), 'runs': runs, 'wa': wa, 'uar': uar,
      'recall': _recalls(per_class, classes),
      'per_corpus': ', '.join(f'{c} {m:.1f}' for c, (m, _) in sorted(per_corpus.items())),
      'paper': _paper(cfg.get('reference')), 'reference': cfg.get('reference'),
      'minutes': _minutes(seconds), 'machine': machine,
      'command': portable_command(command, workdir), 'workdir': workdir,
      'leak': leak_breakdown(workdir),
  }


def ensemble_row(workdir: str, base: dict) -> dict | None:
  """The row of a protocol's seed ensemble (each fold's seeds' posteriors averaged),
  beside its per-run row `base`; None when no fold has several seeds."""
  path = os.path.join(workdir, 'protocol_results.json')
  ens = _json(path).get('seed_ensemble') if os.path.exists(path) else None
  if not ens:
    return None
  classes = list(_json(os.path.join(workdir, 'config.json'))['data']['classes'])
  seeds = sorted({r['seeds'] for r in ens['rows']})
  return {**base, 'leak': None,   # the breakdown is of the runs, given on their row
          'protocol': base['protocol'] + '; seeds ensembled (posteriors averaged)',
          'runs': f'{len(ens["rows"])} × {"/".join(map(str, seeds))}, ensembled',
          'wa': _over_folds(ens, 'test_wa'), 'uar': _over_folds(ens, 'test_uar'),
          'recall': _recalls(ens['pooled_test_per_class'], classes),
          'per_corpus': ', '.join(f'{c} {m:.1f}' for c, (m, _) in
                                  sorted((ens.get('per_corpus_uar_mean_std') or {}).items()))}


def leak_breakdown(workdir: str) -> dict | None:
  """Where a run augmented before the split, the test accuracy of the utterances
  with a variant of the same recording ('file#variant') among what the test model
  was fitted on, and of the others: {'with': (correct, n), 'without': (correct, n)},
  pooled over a protocol's runs; None for a run that did not augment before the split.
  What the test model was fitted on is each run's `fitted_splits` (the SVM refitted
  on validation: train and validation; older SVM results say so in
  `svm.refit_on_validation`), else train."""
  cfg = _json(os.path.join(workdir, 'config.json'))
  if not trainers.labels(cfg)['leaky']:
    return None
  runs = [sub for _, sub, _, _ in protocols.finished_runs(workdir)] or [workdir]
  out = {'with': [0, 0], 'without': [0, 0]}
  source = lambda path: path.split('#')[0]  # noqa: E731
  for run in runs:
    results = _json(os.path.join(run, 'results.json'))
    fitted = results.get('fitted_splits') or (
        ['train', 'validation'] if (results.get('svm') or {}).get('refit_on_validation')
        else ['train'])
    split = _json(os.path.join(run, 'splits.json'))['utterances']
    seen = {source(p) for name in fitted for p in split.get(name, ())}
    for pred in results['test']['predictions']:
      tally = out['with' if source(pred['path']) in seen else 'without']
      tally[0] += pred['predicted'] == pred['label']
      tally[1] += 1
  return {k: tuple(v) for k, v in out.items()}


def _leak_line(i: int, leak: dict) -> str:
  def part(key, words):
    right, n = leak[key]
    return f'{100 * right / n:.1f} % of the {n:,} {words}' if n else f'no {words}'
  seen = part('with', 'test clips with a variant of the same recording trained on')
  return f'- Row {i}: test accuracy {seen}; {part("without", "without")}.'


def _over_folds(ens: dict, key: str) -> tuple:
  mean, std = ens[f'{key}_over_folds']
  return mean, (std if len(ens['rows']) > 1 else None)   # one fold: no spread


def _pm(value) -> str:
  mean, std = value
  return f'{mean:.1f}' if std is None else f'{mean:.1f} ± {std:.1f}'


def table(rows: Sequence[dict]) -> str:
  lines = ['| system | corpus | protocol | runs | test WA % | test UAR % | recall per class % '
           '(pooled test) | UAR % per corpus | paper | min | machine |',
           '|---|---|---|---|---|---|---|---|---|---|---|']   # min: wall minutes per run
  for r in rows:
    lines.append(f'| `{r["system"]}` | {r["corpus"]} | {r["protocol"]} | {r["runs"]} | '
                 f'{_pm(r["wa"])} | {_pm(r["uar"])} | {r["recall"]} | {r["per_corpus"] or "—"} | '
                 f'{r["paper"]} | {r["minutes"]} | {r["machine"]} |')
  lines += ['', 'Commands, in the order of the rows (`DATA_DIR`: where the corpora were '
            'built):', '']
  for i, r in enumerate(rows, 1):
    lines.append(f'{i}. `{r["command"]}`')
  leaks = [(i, r['leak']) for i, r in enumerate(rows, 1) if r.get('leak')]
  if leaks:
    lines += ['', 'Rows augmented before the split, their test clips by whether a variant of '
              'the same recording was among the training files:', '']
    lines += [_leak_line(i, leak) for i, leak in leaks]
  refs = sorted({r['reference'] for r in rows if r['reference']})
  if refs:
    lines += ['', 'The papers\' figures, as each config states them:', '']
    lines += [f'- {ref}' for ref in refs]
  return '\n'.join(lines)


def finished_workdirs(paths: Sequence[str]) -> list[str]:
  """The finished run/protocol workdirs among `paths` (a folder of workdirs is
  searched one level down); a protocol's fold folders are not rows of their own."""
  out = []
  for path in paths:
    if _finished(path):
      out.append(path)
    elif os.path.isdir(path):
      out += [os.path.join(path, d) for d in sorted(os.listdir(path))
              if _finished(os.path.join(path, d))]
  return out


def _finished(path: str) -> bool:
  return os.path.exists(os.path.join(path, 'config.json')) and (
      os.path.exists(os.path.join(path, 'protocol_results.json'))
      or (os.path.exists(os.path.join(path, 'results.json'))
          and not os.path.exists(os.path.join(os.path.dirname(path), 'protocol_results.json'))))


def main(argv: Sequence[str]) -> int:
  if not argv:
    print(__doc__.strip(), file=sys.stderr)
    return 2
  missing = [p for p in argv if not os.path.exists(p)]
  if missing:
    print(f'error: no such folder: {", ".join(missing)}', file=sys.stderr)
    return 2
  workdirs = finished_workdirs(argv)
  if not workdirs:
    print(f'error: no finished run in {", ".join(argv)} (a finished run has results.json '
          'or protocol_results.json beside config.json)', file=sys.stderr)
    return 2
  rows = []
  for w in workdirs:
    try:
      rows.append(row(w))
      ensembled = ensemble_row(w, rows[-1])
      if ensembled:
        rows.append(ensembled)
    except (OSError, KeyError, ValueError) as e:
      print(f'skipped {w}: {type(e).__name__}: {e}', file=sys.stderr)
  print(table(rows))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
