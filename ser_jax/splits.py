"""Speaker-independent fold assignment: which speakers train, validate, test.

Pure functions of the corpus's speaker metadata and a protocol config; no
speaker is ever in two of train/validation/test.
"""
from __future__ import annotations

import collections
import logging
from typing import Mapping, Sequence

import numpy as np

from ser_jax import cli

SPLITS = ('train', 'validation', 'test')


def _sessions(speaker_session: Mapping[str, str]) -> dict[str, list[str]]:
  by_session = collections.defaultdict(list)
  for spk in sorted(speaker_session):
    by_session[speaker_session[spk]].append(spk)
  return dict(sorted(by_session.items()))


def _check_fold(fold: int, n: int, what: str):
  if not 0 <= fold < n:
    raise cli.UsageError(f'protocol.fold={fold} out of range: {n} {what}')


def speaker_split(speaker_session: Mapping[str, str], protocol) -> dict[str, list[str]]:
  """Returns {'train': [...], 'validation': [...], 'test': [...]} speaker ids.

  `speaker_session` maps every speaker of the corpus to its session id.
  Protocols (`protocol.name`):
    loso: leave one speaker out; fold k tests the k-th speaker (sorted ids);
      its session partner validates; all others train (IEMOCAP 10 folds).
    loso_session: leave one session out; fold k tests session k, session k+1
      (cyclic) validates, the rest train.
    holdout: explicit `protocol.test_speakers` / `protocol.validation_speakers`.
  """
  speakers = sorted(speaker_session)
  sessions = _sessions(speaker_session)
  name = protocol.name
  if name == 'loso':
    _check_fold(protocol.fold, len(speakers), 'speakers')
    test = [speakers[protocol.fold]]
    partners = [s for s in sessions[speaker_session[test[0]]] if s != test[0]]
    if len(partners) != 1:
      raise cli.UsageError(
          f'loso needs sessions of exactly two speakers; session '
          f'{speaker_session[test[0]]!r} has {sessions[speaker_session[test[0]]]}')
    validation = partners
  elif name == 'loso_session':
    names = list(sessions)
    if len(names) < 3:
      raise cli.UsageError(f'loso_session needs >= 3 sessions, corpus has {names}')
    _check_fold(protocol.fold, len(names), 'sessions')
    test = sessions[names[protocol.fold]]
    validation = sessions[names[(protocol.fold + 1) % len(names)]]
  elif name == 'holdout':
    test = sorted(protocol.test_speakers)
    validation = sorted(protocol.validation_speakers)
    unknown = (set(test) | set(validation)) - set(speakers)
    if unknown:
      raise cli.UsageError(f'holdout names unknown speakers {sorted(unknown)}')
  else:
    raise unknown_protocol(name)
  held_out = set(test) | set(validation)
  split = {'train': [s for s in speakers if s not in held_out],
           'validation': list(validation), 'test': list(test)}
  check_disjoint(split)
  if not split['train']:
    raise cli.UsageError('protocol leaves no training speaker')
  return split


def check_disjoint(split: Mapping[str, Sequence[str]]):
  for i, a in enumerate(SPLITS):
    for b in SPLITS[i + 1:]:
      both = set(split.get(a, ())) & set(split.get(b, ()))
      if both:
        raise AssertionError(f'speakers {sorted(both)} are in both {a} and {b}')


# ---------------------------------------------------------------------------
# Utterance-level protocols of the combined-corpora papers.

SPEAKER_PROTOCOLS = ('loso', 'loso_session', 'holdout')
PROTOCOLS = SPEAKER_PROTOCOLS + ('stratified_kfold', 'stratified_split', 'group_kfold',
                                 'group_split', 'cross_corpus')


def unknown_protocol(name: str) -> cli.UsageError:
  """The one-line error for a protocol name no splitter knows (a typo, or a new
  protocol without its branch here)."""
  return cli.UsageError(f'protocol.name={name!r} is not a protocol; known: {", ".join(PROTOCOLS)}')


def _k(protocol) -> int:
  k = int(protocol.k)
  if k < 2:
    raise cli.UsageError(f'protocol.k={k}: k-fold protocols need k >= 2 (one split: '
                         f'{protocol.name.replace("kfold", "split")})')
  return k


def parse_folds(spec) -> list[int] | None:
  """`protocol.folds` as a list of folds ('0,2' → [0, 2]); None for '' and 'all'
  (those depend on the corpus); UsageError for anything else."""
  spec = str(spec or '').strip()
  if spec in ('', 'all'):
    return None
  try:
    return [int(f) for f in spec.split(',')]
  except ValueError:
    raise cli.UsageError(f"protocol.folds={spec!r}: 'all', or folds separated by commas "
                         "(e.g. 0,2,4)") from None


def check_protocol(protocol) -> None:
  """UsageError for a protocol name or k no corpus can use (before any is read)."""
  if protocol.name not in PROTOCOLS:
    raise unknown_protocol(protocol.name)
  if protocol.name in ('stratified_kfold', 'group_kfold'):
    _k(protocol)


def num_folds(protocol, speaker_session: Mapping[str, str]) -> int:
  """How many folds the protocol has on this corpus."""
  name = protocol.name
  if name == 'loso':
    return len(speaker_session)
  if name == 'loso_session':
    return len(set(speaker_session.values()))
  if name in ('stratified_kfold', 'group_kfold'):
    return _k(protocol)
  if name == 'cross_corpus' and not protocol.test:
    return len(set(corpus_of(list(speaker_session))))
  if name in ('holdout', 'stratified_split', 'group_split', 'cross_corpus'):
    return 1
  # A new protocol must say how many folds it has, or folds='all' would run one.
  raise unknown_protocol(name)


def corpus_of(speakers) -> np.ndarray:
  """Corpus of each speaker id: 'ravdess' of 'ravdess:01' in a union of
  corpora, '' for a single corpus's plain ids."""
  return np.asarray([s.split(':', 1)[0] if ':' in s else '' for s in map(str, speakers)])


def utterance_split(labels, speakers, protocol) -> dict[str, np.ndarray]:
  """Indices of train/validation/test for utterance-level protocols.

    stratified_kfold: k stratified folds of utterances (`protocol.k`, default
      5); fold f tests, a stratified `val_fraction` (default 0.1) of the rest
      validates. Speakers are shared between splits, as in the papers.
    stratified_split: stratified `fractions` (default 0.8/0.1/0.1).
    group_kfold / group_split: the same with speakers as groups, so that no
      speaker is in two splits (the honest, speaker-independent numbers).
      On a union of corpora each corpus's speakers are grouped on their own
      and the parts joined, so that every fold tests (and validates on)
      speakers of every corpus that has enough of them, and no corpus is in
      test or validation without speakers of it in training (`_grouped`).
  The assignment is a pure function of labels, speakers and
  `protocol.split_seed` (default 0).
  """
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  labels = np.asarray(labels)
  speakers = np.asarray(speakers)
  seed = int(protocol.split_seed)
  idx = np.arange(len(labels))
  name = protocol.name
  if name == 'cross_corpus':
    out = _cross_corpus(labels, speakers, protocol, seed)
    check_disjoint({k: set(speakers[v]) for k, v in out.items()})
    return out
  if name in ('group_kfold', 'group_split'):
    out = _grouped(labels, speakers, protocol, seed)
    check_disjoint({k: set(speakers[v]) for k, v in out.items()})
    return out
  if name == 'stratified_kfold':
    k = _k(protocol)
    _check_fold(protocol.fold, k, 'folds')
    folds = model_selection.StratifiedKFold(k, shuffle=True, random_state=seed)
    rest, test = list(folds.split(idx, labels))[protocol.fold]
    train, val = _two_way(rest, labels, speakers, float(protocol.val_fraction),
                          seed, False)
  elif name == 'stratified_split':
    f_train, f_val, f_test = _fractions(protocol)
    rest, test = _two_way(idx, labels, speakers, f_test, seed, False)
    train, val = _two_way(rest, labels, speakers, f_val / (f_train + f_val), seed, False)
  else:
    raise unknown_protocol(name)
  return {'train': np.sort(train), 'validation': np.sort(val), 'test': np.sort(test)}


def _fractions(protocol):
  f_train, f_val, f_test = protocol.fractions
  if abs(f_train + f_val + f_test - 1) > 1e-6:
    raise cli.UsageError(f'fractions must sum to 1, got {(f_train, f_val, f_test)}')
  return f_train, f_val, f_test


def _small_corpus_folds(n: int, k: int, offset: int) -> list[int]:
  """Folds that test the n < k speakers of a corpus, one each, spread over the
  k folds and rotated by the corpus's position so that small corpora do not
  all test in the same folds."""
  return [(offset + j * k // n) % k for j in range(n)] if n > 1 else []


def _grouped(labels, speakers, protocol, seed) -> dict[str, np.ndarray]:
  """group_kfold / group_split, each corpus of a union grouped on its own.

  A corpus with fewer speakers than `k` (TESS has 2, SAVEE 4) tests one speaker
  in each of n of the k folds; a corpus with one speaker only ever trains.
  Validation is carved the same way from each corpus's remaining speakers
  (in a union only when at least three remain, so that two train).
  """
  corpora = corpus_of(speakers)
  name = protocol.name
  parts = {'train': [], 'validation': [], 'test': []}
  if name == 'group_kfold':
    k = _k(protocol)
    _check_fold(protocol.fold, k, 'folds')
    val_fraction = float(protocol.val_fraction)
  else:
    f_train, f_val, f_test = _fractions(protocol)
    val_fraction = f_val / (f_train + f_val)
  single = len(set(corpora)) == 1
  for i, corpus in enumerate(sorted(set(corpora))):
    idx = np.flatnonzero(corpora == corpus)
    names = sorted(set(speakers[idx]))
    if len(names) < 2:
      if single:
        raise cli.UsageError(f'{len(names)} speaker(s) cannot make a speaker-disjoint split; '
                             'use more speakers or a speaker protocol')
      rest, test = idx, idx[:0]   # one speaker: training only
    elif name == 'group_kfold' and len(names) < k:
      if single:
        raise cli.UsageError(f'group_kfold with k={k} needs at least {k} speakers; the corpus '
                             f'has {len(names)}: lower protocol.k or use loso')
      folds = _small_corpus_folds(len(names), k, i)
      logging.warning('group_kfold: %s has %d speakers, fewer than k=%d: each is tested in '
                      'one fold (folds %s); fold %d tests %s of them.', corpus, len(names), k,
                      sorted(folds), protocol.fold,
                      'one' if protocol.fold in folds else 'none')
      order = np.random.default_rng(seed).permutation(len(names))
      tested = [names[order[j]] for j, f in enumerate(folds) if f == protocol.fold]
      held = np.isin(speakers[idx], tested)
      rest, test = idx[~held], idx[held]
    elif name == 'group_kfold':
      from sklearn import model_selection  # pylint: disable=g-import-not-at-top
      folds = model_selection.StratifiedGroupKFold(k, shuffle=True, random_state=seed)
      r, t = list(folds.split(idx, labels[idx], speakers[idx]))[protocol.fold]
      rest, test = idx[r], idx[t]
    else:
      rest, test = _two_way(idx, labels, speakers, f_test, seed, True)
    # In a union a corpus validates only with >= 3 speakers left after its test
    # speakers (>= 2 then train): TESS's 2 speakers of 1,400 clips each would
    # otherwise take half its training data and most of the validation set.
    # One corpus splits as it always did (_two_way refuses < 2 speakers).
    if single or len(set(speakers[rest])) >= 3:
      train, val = _two_way(rest, labels, speakers, val_fraction, seed, True)
    else:
      train, val = rest, rest[:0]
    for split, part in zip(('train', 'validation', 'test'), (train, val, test)):
      parts[split].append(part)
  return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def cross_corpus_test(corpora, protocol) -> tuple[str, ...]:
  """The test corpora of a cross_corpus fold: `protocol.test` if given, else
  the fold-th corpus in sorted order (leave one corpus out)."""
  names = sorted(set(corpora))
  if len(names) < 2:
    raise cli.UsageError(f'cross_corpus needs a union of corpora; the data has {names}')
  test = tuple(protocol.test)
  if not test:
    _check_fold(protocol.fold, len(names), 'corpora')
    test = (names[protocol.fold],)
  unknown = sorted(set(test) - set(names))
  if unknown:
    raise cli.UsageError(f'protocol.test names {unknown}, not among the corpora {names}')
  return test


def _cross_corpus(labels, speakers, protocol, seed) -> dict[str, np.ndarray]:
  """Test on whole corpora, train and validate on others: `protocol.train`
  (default: every other corpus); validation is `val_fraction` of each training
  corpus's speakers (corpora with at least 3), as in the grouped protocols.
  Classes that the test corpora lack are left out of training and validation
  (`restrict_to_test_classes` in the input pipeline)."""
  corpora = corpus_of(speakers)
  test = cross_corpus_test(corpora, protocol)
  train = tuple(protocol.train) or tuple(
      c for c in sorted(set(corpora)) if c not in test)
  overlap = sorted(set(train) & set(test))
  if overlap:
    raise cli.UsageError(f'cross_corpus: {overlap} both trains and tests')
  val_fraction = float(protocol.val_fraction)
  parts = {'train': [], 'validation': [], 'test': [np.flatnonzero(np.isin(corpora, test))]}
  for corpus in train:
    idx = np.flatnonzero(corpora == corpus)
    if not len(idx):
      raise cli.UsageError(f'protocol.train names {corpus!r}, which the data does not have')
    if len(set(speakers[idx])) >= 3:
      rest, val = _two_way(idx, labels, speakers, val_fraction, seed, True)
    else:
      rest, val = idx, idx[:0]
    parts['train'].append(rest)
    parts['validation'].append(val)
  logging.info('cross_corpus: train on %s, test on %s.', ', '.join(train), ', '.join(test))
  return {k: np.sort(np.concatenate(v)).astype(np.int64) for k, v in parts.items()}


def _two_way(idx, labels, speakers, fraction, seed, grouped):
  """Splits idx into (rest, held) with `fraction` held out, stratified by label."""
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  idx = np.asarray(idx)
  if grouped:
    # StratifiedGroupKFold with round(1/fraction) folds; its first fold is
    # held. With fewer speakers than that, one speaker's share is held.
    n_groups = len(set(speakers[idx]))
    if n_groups < 2:
      raise cli.UsageError(f'{n_groups} speaker(s) cannot make a speaker-disjoint split; '
                           'use more speakers or a speaker protocol')
    k = min(max(2, int(round(1 / fraction))), n_groups)
    folds = model_selection.StratifiedGroupKFold(k, shuffle=True, random_state=seed)
    rest, held = next(folds.split(idx, labels[idx], speakers[idx]))
  else:
    rest, held = model_selection.train_test_split(
        np.arange(len(idx)), test_size=fraction, stratify=labels[idx], random_state=seed)
  return idx[rest], idx[held]
