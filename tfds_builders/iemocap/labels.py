"""IEMOCAP's layout and label files: finding the corpus, parsing EmoEvaluation.

Pure Python (pathlib, re): nothing here decodes audio or imports TFDS, so the
parser is testable on its own and reusable by scripts.

A dialog's label file `SessionN/dialog/EmoEvaluation/DIALOG.txt` holds, per
turn, one label line followed by the individual annotators' lines:

    % [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

    [6.2901 - 8.2357]	Ses01F_impro01_F000	neu	[2.5000, 2.5000, 2.5000]
    C-E2:	Neutral;	()
    A-E3:	val 3; act 2; dom  2;	()

Only the `[start - end] UTT lab [V, A, D]` lines are labels; annotator lines
(`C-..:`, `A-..:`), comments (`%`) and blank lines are skipped. Whitespace
between fields may be tabs or spaces.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import re

# The raw labels of the corpus (`xxx`: the annotators did not agree).
LABELS = ('neu', 'hap', 'exc', 'ang', 'sad', 'fru', 'sur', 'fea', 'dis', 'oth', 'xxx')

# Raw label -> unified emotion of SPEC §3 ('other' for fru, oth, xxx and any
# label outside LABELS). `exc` joins `hap` here; the raw `label` keeps `exc`, so
# the set without the merge stays selectable.
OTHER = 'other'
EMOTION_OF = {
    'neu': 'neutral', 'hap': 'happy', 'exc': 'happy', 'sad': 'sad',
    'ang': 'angry', 'fea': 'fearful', 'dis': 'disgust', 'sur': 'surprised',
    'fru': OTHER, 'oth': OTHER, 'xxx': OTHER,
}

CORPUS_DIR = 'IEMOCAP_full_release'
SESSION_DIR_RE = re.compile(r'^Session(\d+)$')
EXPECTED = (
    f'the IEMOCAP release: `{CORPUS_DIR}/` (or the folder that holds it) with '
    '`Session1/` ... `Session5/`, each holding `dialog/EmoEvaluation/DIALOG.txt` label '
    'files and `sentences/wav/DIALOG/UTTERANCE.wav` audio')

_NUM = r'[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?'
_LABEL_LINE_RE = re.compile(
    rf'^\[\s*(?P<start>{_NUM})\s*-\s*(?P<end>{_NUM})\s*\]'
    r'\s*(?P<utt>[^\s\[\]]+)\s+(?P<lab>[^\s\[\]]+)'
    r'\s*(?:\[(?P<vad>[^\]]*)\])?\s*$')
# Ses01F_impro01_M003: session Ses01, dialog Ses01F_impro01, speaker Ses01M.
_UTT_RE = re.compile(r'^(?P<session>Ses\d{2})[A-Za-z]?_(?P<rest>.+)_(?P<spk>[FMfm])[^_]*$')


class BadUtteranceId(ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class Turn:
  """One labelled turn of a label file."""
  utterance: str           # Ses01F_impro01_M003
  dialog: str              # Ses01F_impro01
  session: str             # Ses01
  speaker: str             # Ses01M
  gender: str              # 'female' | 'male'
  improvised: bool
  start: float             # seconds in the dialog
  end: float
  valence: float           # NaN when the line has no [V, A, D]
  activation: float
  dominance: float
  label: str               # raw label, lower case (neu, exc, xxx, ...)
  source: str              # label file, relative to the corpus root
  line: int                # 1-based line number in that file

  @property
  def emotion(self) -> str:
    return EMOTION_OF.get(self.label, OTHER)

  @property
  def dialog_type(self) -> str:
    return 'impro' if self.improvised else 'script'


@dataclasses.dataclass(frozen=True)
class Problem:
  """A line of a label file that is not turned into a Turn."""
  source: str
  line: int
  reason: str              # 'unparseable label line: ...', 'bad utterance id: ...'
  text: str


def parse_utterance_id(utt: str) -> dict:
  """Session, dialog, speaker, gender and dialog type of a turn id.

  The speaker is the session plus the first letter of the LAST `_` token:
  `Ses01F_impro01_M003` is the male speaker of session 1 (`Ses01M`); the F/M
  after the session in the dialog name says who wore the markers, not who
  speaks. Suffixed dialogs (`Ses03M_impro05a_F001`, `Ses05M_script01_1b_M012`)
  parse the same way.
  """
  m = _UTT_RE.match(utt)
  if not m:
    raise BadUtteranceId(f'bad utterance id: {utt!r} is not SesNN?_DIALOG_[FM]NNN')
  dialog = utt.rsplit('_', 1)[0]
  kind = dialog_type(dialog)
  letter = m['spk'].upper()
  return dict(session=m['session'], dialog=dialog, speaker=m['session'] + letter,
              gender='female' if letter == 'F' else 'male',
              improvised=kind == 'impro')


def dialog_type(dialog: str) -> str:
  """'impro' or 'script' from a dialog name (`Ses05M_script01_1b` -> 'script')."""
  parts = dialog.lower().split('_')[1:]
  if any(p.startswith('impro') for p in parts):
    return 'impro'
  if any(p.startswith('script') for p in parts):
    return 'script'
  raise BadUtteranceId(f'bad utterance id: dialog {dialog!r} is neither impro nor script')


def _vad(text: str | None) -> tuple[float, float, float] | None:
  if text is None:
    return None
  parts = [p for p in re.split(r'[\s,;]+', text.strip()) if p]
  if len(parts) != 3:
    return None
  try:
    return tuple(float(p) for p in parts)  # type: ignore[return-value]
  except ValueError:
    return None


def parse_label_text(text: str, source: str = '') -> tuple[list[Turn], list[Problem]]:
  """The labelled turns of one EmoEvaluation file, and the lines that failed."""
  turns, problems = [], []
  for n, raw in enumerate(text.splitlines(), start=1):
    line = raw.strip().lstrip('\ufeff')
    if not line.startswith('['):
      continue  # annotator lines (C-E1:, A-F2:), '%' header, blank lines
    m = _LABEL_LINE_RE.match(line)
    if not m:
      problems.append(Problem(source, n, 'unparseable label line', line))
      continue
    try:
      ids = parse_utterance_id(m['utt'])
    except BadUtteranceId as e:
      problems.append(Problem(source, n, str(e), line))
      continue
    vad = _vad(m['vad']) or (math.nan,) * 3   # kept; the builder notes it
    turns.append(Turn(
        utterance=m['utt'], start=float(m['start']), end=float(m['end']),
        valence=vad[0], activation=vad[1], dominance=vad[2],
        label=m['lab'].strip(';,').lower(), source=source, line=n, **ids))
  return turns, problems


def _visible(p: pathlib.Path) -> bool:
  return not p.name.startswith('.')   # macOS `._*` AppleDouble files, .DS_Store


def session_dirs(root: pathlib.Path) -> list[pathlib.Path]:
  """`SessionN/` folders of a corpus root, in session order."""
  found = []
  try:
    children = list(root.iterdir())
  except OSError:
    return []
  for p in children:
    m = SESSION_DIR_RE.match(p.name)
    if m and p.is_dir() and (p / 'dialog' / 'EmoEvaluation').is_dir():
      found.append((int(m.group(1)), p))
  return [p for _, p in sorted(found)]


def find_corpus_root(manual_dir) -> pathlib.Path | None:
  """`IEMOCAP_full_release/` given it or its parent (or another wrapping folder)."""
  path = pathlib.Path(manual_dir).expanduser()
  if not path.is_dir():
    return None
  if session_dirs(path):
    return path
  candidates = [path / CORPUS_DIR] + sorted(
      p for p in path.iterdir() if p.is_dir() and _visible(p) and p.name != CORPUS_DIR)
  for c in candidates:
    if c.is_dir() and session_dirs(c):
      return c
  return None


@dataclasses.dataclass
class Corpus:
  """What the label files and the wav folders of a corpus root hold."""
  root: pathlib.Path
  sessions: list[str]                         # 'Session1', ...
  turns: list[Turn]                           # every labelled turn, unique ids
  wavs: dict[str, pathlib.Path]               # utterance id -> wav path
  problems: list[Problem]                     # label lines not turned into turns
  duplicates: list[Turn]                      # repeated turn ids (first one kept)
  non_dialog_files: list[str]                 # EmoEvaluation/*.txt without label lines
  ignored_hidden: int                         # `._*` and other dot files skipped

  def rel(self, path: pathlib.Path) -> str:
    return path.relative_to(self.root).as_posix()

  @property
  def unlabelled_wavs(self) -> list[pathlib.Path]:
    labelled = {t.utterance for t in self.turns}
    return [p for u, p in sorted(self.wavs.items()) if u not in labelled]

  def wav_of(self, turn: Turn) -> pathlib.Path | None:
    return self.wavs.get(turn.utterance)


def scan_corpus(root) -> Corpus:
  """Parses every dialog label file and lists every wav under `root`."""
  root = pathlib.Path(root)
  corpus = Corpus(root, [], [], {}, [], [], [], 0)
  seen = {}
  for sdir in session_dirs(root):
    corpus.sessions.append(sdir.name)
    emo = sdir / 'dialog' / 'EmoEvaluation'
    for f in sorted(emo.iterdir()):
      if not f.is_file() or f.suffix.lower() != '.txt':
        continue   # Categorical/, Attribute/, Self-evaluation/ subfolders
      if not _visible(f):
        corpus.ignored_hidden += 1
        continue
      source = corpus.rel(f)
      turns, problems = parse_label_text(
          f.read_bytes().decode('utf-8', errors='replace'), source)
      corpus.problems += problems
      if not turns and not problems:
        corpus.non_dialog_files.append(source)
      for t in turns:
        if t.utterance in seen:
          corpus.duplicates.append(t)
        else:
          seen[t.utterance] = t
          corpus.turns.append(t)
    wav_dir = sdir / 'sentences' / 'wav'
    if wav_dir.is_dir():
      for d in sorted(wav_dir.iterdir()):
        if not d.is_dir():
          continue
        if not _visible(d):
          corpus.ignored_hidden += 1
          continue
        for w in sorted(d.iterdir()):
          if w.suffix.lower() != '.wav' or not w.is_file():
            continue
          if not _visible(w):
            corpus.ignored_hidden += 1
            continue
          corpus.wavs.setdefault(w.stem, w)
  corpus.turns.sort(key=lambda t: (t.session, t.dialog, t.utterance))
  return corpus

