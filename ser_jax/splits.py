"""Speaker-independent fold assignment: which speakers train, validate, test.

Pure functions of the corpus's speaker metadata and a protocol config; no
speaker is ever in two of train/validation/test.
"""
from __future__ import annotations

import collections
from typing import Mapping, Sequence

SPLITS = ('train', 'validation', 'test')


def _sessions(speaker_session: Mapping[str, str]) -> dict[str, list[str]]:
  by_session = collections.defaultdict(list)
  for spk in sorted(speaker_session):
    by_session[speaker_session[spk]].append(spk)
  return dict(sorted(by_session.items()))


def _check_fold(fold: int, n: int, what: str):
  if not 0 <= fold < n:
    raise ValueError(f'protocol.fold={fold} out of range: {n} {what}')


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
      raise ValueError(
          f'loso needs sessions of exactly two speakers; session '
          f'{speaker_session[test[0]]!r} has {sessions[speaker_session[test[0]]]}')
    validation = partners
  elif name == 'loso_session':
    names = list(sessions)
    if len(names) < 3:
      raise ValueError(f'loso_session needs >= 3 sessions, corpus has {names}')
    _check_fold(protocol.fold, len(names), 'sessions')
    test = sessions[names[protocol.fold]]
    validation = sessions[names[(protocol.fold + 1) % len(names)]]
  elif name == 'holdout':
    test = sorted(protocol.test_speakers)
    validation = sorted(protocol.validation_speakers)
    unknown = (set(test) | set(validation)) - set(speakers)
    if unknown:
      raise ValueError(f'holdout names unknown speakers {sorted(unknown)}')
  else:
    raise ValueError(f'unknown protocol {name!r}')
  held_out = set(test) | set(validation)
  split = {'train': [s for s in speakers if s not in held_out],
           'validation': list(validation), 'test': list(test)}
  check_disjoint(split)
  if not split['train']:
    raise ValueError('protocol leaves no training speaker')
  return split


def check_disjoint(split: Mapping[str, Sequence[str]]):
  for i, a in enumerate(SPLITS):
    for b in SPLITS[i + 1:]:
      both = set(split.get(a, ())) & set(split.get(b, ()))
      if both:
        raise AssertionError(f'speakers {sorted(both)} are in both {a} and {b}')
