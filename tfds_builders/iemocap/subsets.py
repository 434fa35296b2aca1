"""The IEMOCAP subsets of SPEC §2, their counts and the published figures.

Every labelled turn is in the dataset; a subset is a filter on two stored
fields, `label` (the raw label) and `improvised`:

  four_class                    label in {neu, hap, exc, ang, sad}; exc counts as happy
  four_class_improvised         the same, improvised dialogs only
  four_class_no_exc             label in {neu, hap, ang, sad} (exc left out)
  four_class_no_exc_improvised  the same, improvised dialogs only

(`four_class` is what `emotion in {neutral, happy, sad, angry}` selects.)
Pure Python: works on `labels.Turn`s, on dicts read back from TFDS (label as
str or bytes) and on anything with `label`, `session`, `improvised`.
"""
from __future__ import annotations

import collections
from typing import Any, Iterable, Mapping

CLASSES = ('neutral', 'happy', 'sad', 'angry')   # the order of SPEC §4's configs

_MERGED = {'neu': 'neutral', 'hap': 'happy', 'exc': 'happy', 'sad': 'sad', 'ang': 'angry'}
_NO_EXC = {k: v for k, v in _MERGED.items() if k != 'exc'}

# name -> (raw label -> class, improvised dialogs only)
SUBSETS: dict[str, tuple[Mapping[str, str], bool]] = {
    'four_class': (_MERGED, False),
    'four_class_improvised': (_MERGED, True),
    'four_class_no_exc': (_NO_EXC, False),
    'four_class_no_exc_improvised': (_NO_EXC, True),
}

# SPEC §2: 4 classes, exc merged into hap, all sessions and dialogs.
PUBLISHED = {
    'four_class': {
        'total': 5531,
        'classes': {'neutral': 1708, 'happy': 1636, 'sad': 1084, 'angry': 1103},
        'sessions': {'Ses01': 1085, 'Ses02': 1023, 'Ses03': 1151, 'Ses04': 1031,
                     'Ses05': 1241},
    },
}
# The full release: 10,039 labelled turns in 5 sessions. Below this the corpus
# is taken to be partial (or dummy data) and counts are printed, not asserted.
FULL_CORPUS_MIN_TURNS = 10_000
FULL_CORPUS_SESSIONS = 5


def select(label, improvised, subset: str = 'four_class') -> str | None:
  """The class of one turn in `subset`, or None when the subset leaves it out."""
  mapping, improvised_only = SUBSETS[subset]
  if improvised_only and not improvised:
    return None
  return mapping.get(_str(label))


def _str(x) -> str:
  return x.decode() if isinstance(x, bytes) else str(x)


def _get(turn: Any, key: str):
  return turn[key] if isinstance(turn, Mapping) else getattr(turn, key)


def subset_counts(turns: Iterable[Any]) -> dict:
  """Counts of every subset: total, per class, per session, per session and class.

  Returns a JSON-able dict:
    {'labelled_turns': N, 'sessions': {session: N}, 'raw_labels': {label: N},
     'improvised_turns': N,
     'subsets': {name: {'total': n, 'classes': {class: n}, 'sessions': {session: n},
                        'session_classes': {session: {class: n}}}}}
  """
  raw = collections.Counter()
  sessions = collections.Counter()
  improvised_turns = 0
  sub = {name: (collections.Counter(), collections.Counter(),
                collections.defaultdict(collections.Counter)) for name in SUBSETS}
  n = 0
  for t in turns:
    n += 1
    label, session = _str(_get(t, 'label')), _str(_get(t, 'session'))
    improvised = bool(_get(t, 'improvised'))
    raw[label] += 1
    sessions[session] += 1
    improvised_turns += improvised
    for name in SUBSETS:
      cls = select(label, improvised, name)
      if cls is not None:
        classes, per_session, per_both = sub[name]
        classes[cls] += 1
        per_session[session] += 1
        per_both[session][cls] += 1
  out = {
      'labelled_turns': n,
      'sessions': dict(sorted(sessions.items())),
      'raw_labels': dict(sorted(raw.items())),
      'improvised_turns': improvised_turns,
      'subsets': {},
  }
  for name, (classes, per_session, per_both) in sub.items():
    out['subsets'][name] = {
        'total': sum(classes.values()),
        'classes': {c: classes[c] for c in CLASSES if c in SUBSETS[name][0].values()},
        'sessions': dict(sorted(per_session.items())),
        'session_classes': {s: {c: per_both[s][c] for c in CLASSES}
                            for s in sorted(per_both)},
    }
  return out


def is_full_corpus(counts: Mapping) -> bool:
  """All five sessions and (nearly) all of the 10,039 labelled turns."""
  return (len(counts['sessions']) >= FULL_CORPUS_SESSIONS
          and counts['labelled_turns'] >= FULL_CORPUS_MIN_TURNS)


def published_mismatches(counts: Mapping) -> list[str]:
  """Differences between `counts` and the published figures ([] if none)."""
  diffs = []
  for name, want in PUBLISHED.items():
    got = counts['subsets'][name]
    if got['total'] != want['total']:
      diffs.append(f'{name}: {got["total"]} turns, published {want["total"]}')
    for key in ('classes', 'sessions'):
      for k, v in want[key].items():
        if got[key].get(k, 0) != v:
          diffs.append(f'{name} {k}: {got[key].get(k, 0)}, published {v}')
  return diffs


def assert_published(counts: Mapping, what: str = 'label files'):
  """Raises AssertionError naming every count that differs from the published one."""
  diffs = published_mismatches(counts)
  if diffs:
    raise AssertionError(
        f'IEMOCAP {what}: the subset counts differ from the published figures '
        f'(SPEC §2): ' + '; '.join(diffs))


def format_counts(counts: Mapping, title: str = 'IEMOCAP subset counts') -> str:
  """A small table for logs and the check script."""
  sessions = sorted(counts['sessions'])
  lines = [f'{title}: {counts["labelled_turns"]} labelled turns '
           f'({counts["improvised_turns"]} improvised) in {len(sessions)} sessions',
           '  raw labels: ' + ', '.join(f'{k} {v}' for k, v in counts['raw_labels'].items())]
  head = f'  {"subset":<30}{"total":>7}' + ''.join(f'{c[:4]:>7}' for c in CLASSES) + \
      ''.join(f'{s:>7}' for s in sessions)
  lines.append(head)
  for name, c in counts['subsets'].items():
    lines.append(f'  {name:<30}{c["total"]:>7}'
                 + ''.join(f'{c["classes"].get(k, 0):>7}' for k in CLASSES)
                 + ''.join(f'{c["sessions"].get(s, 0):>7}' for s in sessions))
  want = PUBLISHED['four_class']
  lines.append(f'  {"published four_class":<30}{want["total"]:>7}'
               + ''.join(f'{want["classes"][k]:>7}' for k in CLASSES)
               + ''.join(f'{want["sessions"].get(s, 0):>7}' for s in sessions))
  return '\n'.join(lines)
