"""A tiny IEMOCAP in the real layout, with the oddities the builder must handle.

    python -m tfds_builders.iemocap.dummy_data /tmp/iemocap_dummy
    tfds build tfds_builders/iemocap --manual_dir=/tmp/iemocap_dummy

writes `/tmp/iemocap_dummy/IEMOCAP_full_release/Session{1,3,5}/...`: 6 dialogs
(improvised and scripted, suffixed names `Ses03M_impro05a`, `Ses05M_script01_1b`),
0.2-0.45 s clips, label files with annotator lines, a `%` header, tabs or
spaces or CRLF, a line without [V, A, D] and a malformed line; EmoEvaluation
subfolders (Categorical/, Attribute/, Self-evaluation/), macOS `._*` files and
a non-dialog txt. Audio oddities: stereo, 44.1 kHz, AIFF under `.wav`, all
zeros (kept), 0 bytes, not audio at all, a labelled turn without its wav, a
wav without a label line (skipped).

`write(parent)` returns the manifest tests compare against.
"""
from __future__ import annotations

import collections
import pathlib
import sys

import numpy as np

SR = 16_000

# kind of each turn's wav: ok | stereo | rate | aiff | silent | empty | garbage | missing
# (utterance suffix, raw label, seconds, kind)
DIALOGS = {
    'Session1': {
        'Ses01F_impro01': ('tabs', [
            ('F000', 'neu', 0.30, 'ok'),
            ('M000', 'hap', 0.25, 'stereo'),
            ('F001', 'exc', 0.40, 'ok'),
            ('M003', 'ang', 0.35, 'ok'),
            ('F002', 'xxx', 0.30, 'rate'),
            ('M001', 'fru', 0.20, 'ok'),
        ]),
        'Ses01M_script01_1': ('spaces', [
            ('M000', 'sad', 0.30, 'aiff'),
            ('F000', 'sur', 0.25, 'ok'),
            ('M001', 'oth', 0.20, 'empty'),
            ('F001', 'neu', 0.30, 'missing'),
            ('M002', 'dis', 0.45, 'ok'),
        ]),
    },
    'Session3': {
        'Ses03M_impro05a': ('tabs', [
            ('M000', 'fea', 0.30, 'ok'),
            ('F000', 'neu', 0.30, 'silent'),
            ('M001', 'ang', 0.25, 'ok'),
            ('F001', 'exc', 0.35, 'ok'),
        ]),
        'Ses03M_impro05b': ('spaces', [
            ('M000', 'sad', 0.30, 'garbage'),
            ('F000', 'hap', 0.30, 'ok'),
            ('F001', 'neu', 0.20, 'ok'),      # its label line has no [V, A, D]
        ]),
    },
    'Session5': {
        'Ses05M_script01_1b': ('crlf', [
            ('F000', 'ang', 0.30, 'ok'),
            ('M000', 'neu', 0.30, 'ok'),
            ('F001', 'sad', 0.25, 'ok'),
            ('M001', 'exc', 0.30, 'ok'),
        ]),
        'Ses05F_impro03': ('tabs', [
            ('F000', 'hap', 0.30, 'ok'),
            ('M000', 'sad', 0.30, 'ok'),
            ('M001', 'neu', 0.20, 'ok'),
        ]),
    },
}
NO_VAD = 'Ses03M_impro05b_F001'
UNLABELLED_WAV = 'Session1/sentences/wav/Ses01M_script01_1/Ses01M_script01_1_F099.wav'
MALFORMED_LINE = '[12.5000 - ]\tSes03M_impro05b_M007\tneu\t[2.5000, 2.5000, 2.5000]'

# SkipLog reason key -> count (the part of the reason before ':').
EXPECTED_SKIPS = {
    'empty file (0 bytes)': 1,
    'missing wav': 1,
    'undecodable': 1,
    'wav without label line': 1,
    'unparseable label line': 1,
}


def _vad(i: int) -> tuple[float, float, float]:
  return (round(1.5 + 0.5 * (i % 5), 4), round(2.0 + 0.3333 * (i % 4), 4),
          round(3.5 - 0.25 * (i % 3), 4))


def tone(seconds: float, rate: int, seed: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  t = np.arange(int(round(seconds * rate))) / rate
  y = 0.3 * np.sin(2 * np.pi * (150 + 20 * seed) * t) + 0.02 * rng.standard_normal(t.size)
  return y.astype(np.float32)


def write_wav(path: pathlib.Path, kind: str, seconds: float, seed: int):
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  path.parent.mkdir(parents=True, exist_ok=True)
  if kind == 'ok':
    sf.write(path, tone(seconds, SR, seed), SR, subtype='PCM_16', format='WAV')
  elif kind == 'stereo':
    y = tone(seconds, SR, seed)
    sf.write(path, np.stack([y, 0.5 * y], axis=1), SR, subtype='PCM_16', format='WAV')
  elif kind == 'rate':
    sf.write(path, tone(seconds, 44_100, seed), 44_100, subtype='PCM_16', format='WAV')
  elif kind == 'aiff':
    sf.write(path, tone(seconds, SR, seed), SR, subtype='PCM_16', format='AIFF')
  elif kind == 'silent':
    sf.write(path, np.zeros(int(seconds * SR), np.float32), SR, subtype='PCM_16',
             format='WAV')
  elif kind == 'empty':
    path.write_bytes(b'')
  elif kind == 'garbage':
    path.write_bytes(b'this is not audio at all\n' * 40)
  elif kind != 'missing':
    raise ValueError(kind)


def _label_file(dialog: str, style: str, entries) -> str:
  sep = {'tabs': '\t', 'spaces': '   ', 'crlf': '\t'}[style]
  lines = ['% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]', '']
  for e in entries:
    v, a, d = e['vad']
    if style == 'spaces':
      head = f'[ {e["start"]:.4f} -  {e["end"]:.4f} ]'
      vad = f'[{v:.4f},{a:.4f},  {d:.4f}]'
    else:
      head = f'[{e["start"]:.4f} - {e["end"]:.4f}]'
      vad = f'[{v:.4f}, {a:.4f}, {d:.4f}]'
    line = sep.join([head, e['utterance'], e['label']])
    if e['utterance'] != NO_VAD:
      line += sep + vad
    if style == 'spaces':
      line = '  ' + line + '  '
    lines += [line,
              'C-E2:\tNeutral;\t()', 'C-E3:\tAnger; Frustration;\t(irritated [but polite])',
              'C-F1:\tNeutral;\t()', 'A-E3:\tval 3; act 2; dom  2;\t()',
              'A-F1:\tval 2; act 3; dom  3;\t([2.0, 3.0, 4.0] mildly aggravated)', '']
    if dialog == 'Ses03M_impro05b' and e['utterance'].endswith('F000'):
      lines += [MALFORMED_LINE, 'C-E2:\tNeutral;\t()', '']
  if style == 'crlf':
    return '\r\n'.join(lines[2:]).rstrip()     # no header, no final newline
  return '\n'.join(lines) + '\n'


def write(parent, nested: bool = True) -> dict:
  """Writes the dummy corpus under `parent` and returns its manifest.

  nested: `parent/IEMOCAP_full_release/Session1/...` (True) or
  `parent/Session1/...` (False).
  """
  parent = pathlib.Path(parent)
  root = parent / 'IEMOCAP_full_release' if nested else parent
  turns = []
  seed = 0
  for session, dialogs in DIALOGS.items():
    sdir = root / session
    emo = sdir / 'dialog' / 'EmoEvaluation'
    emo.mkdir(parents=True, exist_ok=True)
    for dialog, (style, items) in dialogs.items():
      entries, t = [], 2.0
      for suffix, label, seconds, kind in items:
        seed += 1
        utt = f'{dialog}_{suffix}'
        vad = _vad(seed) if utt != NO_VAD else (float('nan'),) * 3
        rel = f'{session}/sentences/wav/{dialog}/{utt}.wav'
        write_wav(root / rel, kind, seconds, seed)
        e = dict(utterance=utt, label=label, kind=kind, seconds=seconds,
                 start=round(t, 4), end=round(t + seconds, 4), vad=vad,
                 session=utt[:5], dialog=dialog, path=rel,
                 speaker=utt[:5] + suffix[0], gender='female' if suffix[0] == 'F' else 'male',
                 improvised='impro' in dialog, seed=seed)
        entries.append(e)
        t += seconds + 1.7
      text = _label_file(dialog, style, entries)
      (emo / f'{dialog}.txt').write_bytes(text.encode())
      turns += entries
    # Not dialog label files: the per-annotator folders and macOS leftovers.
    first = next(iter(dialogs))
    for sub, name, text in (
        ('Categorical', f'{first}_e2_cat.txt', f'{first}_F000 :Neutral; ()\n'),
        ('Attribute', f'{first}_e1_atr.txt', f'{first}_F000 :act 2; val 3; dom 2;  ()\n'),
        ('Self-evaluation', f'{first}_sel.txt', f'{first}_F000 :val 3; act 2; dom 2;\n')):
      (emo / sub).mkdir(exist_ok=True)
      (emo / sub / name).write_text(text)
    (emo / f'._{first}.txt').write_bytes(b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X   ' * 8)
    (root / session / 'sentences' / 'wav' / first / f'._{first}_F000.wav').write_bytes(
        b'\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X   ' * 8)
  (root / 'Session1' / 'dialog' / 'EmoEvaluation' / 'notes.txt').write_text(
      'annotation notes, not a dialog\n')
  write_wav(root / UNLABELLED_WAV, 'ok', 0.2, 99)

  kept = [e for e in turns if e['kind'] not in ('empty', 'garbage', 'missing')]
  return dict(
      root=root, turns=turns, kept=kept,
      skips=collections.Counter(EXPECTED_SKIPS),
      sessions=sorted({e['session'] for e in turns}),
  )


if __name__ == '__main__':
  out = write(sys.argv[1] if len(sys.argv) > 1 else 'iemocap_dummy')
  print(f"wrote {len(out['turns'])} labelled turns under {out['root']}")
