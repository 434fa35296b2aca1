"""A small RAVDESS in its real layout, oddities included (tests, benchmarks).

    python -m tfds_builders.ravdess.dummy_data DIR [--layout nested]
"""
from __future__ import annotations

import os
import sys

try:
  from tfds_builders import common
except ImportError:
  import pathlib
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common

NESTED = 'Audio_Speech_Actors_01-24'
RATE = 48_000


def name(emotion: int, intensity: int, statement: int, repetition: int, actor: int,
         modality: int = 3, channel: int = 1) -> str:
  return (f'{modality:02d}-{channel:02d}-{emotion:02d}-{intensity:02d}-'
          f'{statement:02d}-{repetition:02d}-{actor:02d}.wav')


def full_actor(actor: int) -> list[str]:
  """The 60 names of one actor in the real corpus."""
  out = []
  for emo in range(1, 9):
    for intensity in ((1,) if emo == 1 else (1, 2)):
      for statement in (1, 2):
        for rep in (1, 2):
          out.append(name(emo, intensity, statement, rep, actor))
  return out


def make(root, *, actors=(1, 2), layout: str = 'flat', oddities: bool = True,
         seconds: float = 0.3, full: bool = False) -> dict:
  """Writes a RAVDESS-like corpus under root and returns what a build must give.

  layout: 'flat' (root/Actor_NN/...), 'nested' (root/Audio_Speech_Actors_01-24/
  Actor_NN/...) or 'both' (the Kaggle copy: the same files in both places).
  full: every actor has its 60 files; else each actor has 10 files covering the
  8 emotions, both intensities, statements and repetitions.
  Returns {'examples': {relpath: fields}, 'skipped': {relpath: reason key},
  'silent': [...], 'stereo': [...], 'resampled': [...], 'aiff': [...]}.
  """
  root = os.fspath(root)
  expect = {'examples': {}, 'skipped': {}, 'silent': [], 'stereo': [],
            'resampled': [], 'aiff': []}
  bases = {'flat': [''], 'nested': [NESTED + '/'], 'both': ['', NESTED.lower() + '/']}[layout]
  seed = 0
  for actor in actors:
    names = full_actor(actor) if full else [
        name(1, 1, 1, 1, actor), name(2, 1, 2, 1, actor), name(2, 2, 1, 2, actor),
        name(3, 2, 1, 1, actor), name(4, 1, 2, 2, actor), name(5, 2, 2, 1, actor),
        name(6, 1, 1, 1, actor), name(7, 2, 1, 1, actor), name(8, 1, 2, 1, actor),
        name(8, 2, 2, 2, actor)]
    for i, n in enumerate(names):
      seed += 1
      # Every 7th file stereo, every 5th carries extra RIFF chunks.
      stereo = oddities and i % 7 == 3
      data = common.dummy_signal(seconds + 0.01 * (i % 5), RATE, seed, 2 if stereo else 1)
      for k, base in enumerate(bases):
        rel = f'{base}Actor_{actor:02d}/{n}'
        common.write_audio(os.path.join(root, rel), data, RATE,
                           extra_chunks=oddities and i % 5 == 1)
        if k == 0:
          f = n[:-4].split('-')
          expect['examples'][rel] = {
              'emotion': int(f[2]), 'intensity': int(f[3]), 'statement': int(f[4]),
              'repetition': int(f[5]), 'actor': int(f[6]), 'frames': len(data),
              'rate': RATE}
          if stereo:
            expect['stereo'].append(rel)
        else:
          expect['skipped'][rel] = 'duplicate recording'
  if not oddities:
    return expect
  a = actors[0]
  d = f'{bases[0]}Actor_{a:02d}/'

  def add(rel, data, rate, **kw):
    common.write_audio(os.path.join(root, rel), data, rate, **kw)
    f = os.path.basename(rel)[:-4].split('-')
    expect['examples'][rel] = {
        'emotion': int(f[2]), 'intensity': int(f[3]), 'statement': int(f[4]),
        'repetition': int(f[5]), 'actor': int(f[6]), 'frames': len(data), 'rate': rate}
    return rel

  # Kept: all zeros; 44.1 kHz instead of 48; AIFF under .wav.
  expect['silent'].append(add(d + name(5, 1, 1, 2, a), 0 * common.dummy_signal(0.25, RATE, 1), RATE))
  expect['resampled'].append(add(d + name(6, 2, 2, 2, a), common.dummy_signal(0.3, 44_100, 2), 44_100))
  expect['aiff'].append(add(d + name(3, 1, 2, 2, a), common.dummy_signal(0.3, RATE, 3), RATE, fmt='AIFF'))
  # Skipped: empty file, garbage, song, video, unparseable names, macOS junk.
  for rel, why, content in [
      (d + name(4, 2, 1, 1, a), 'empty file', b''),
      (d + name(7, 1, 2, 2, a), 'undecodable', b'not audio at all' * 10),
  ]:
    with open(os.path.join(root, rel), 'wb') as f:
      f.write(content)
    expect['skipped'][rel] = why
  for rel, why in [
      (d + name(3, 1, 1, 1, a, channel=2), 'not audio-only speech'),   # song
      (d + name(3, 1, 1, 1, a, modality=1), 'not audio-only speech'),  # full AV
      (d + '03-01-03-01-01-01.wav', 'unparseable name'),               # six fields
      (d + 'Copy of ' + name(2, 1, 1, 1, a), 'unparseable name'),
      (d + '03-01-09-01-01-01-01.wav', 'unparseable name')]:           # emotion 09
    common.write_audio(os.path.join(root, rel), common.dummy_signal(0.2, RATE, 4), RATE)
    expect['skipped'][rel] = why
  junk = f'__MACOSX/{d}._{name(1, 1, 1, 1, a)}'
  os.makedirs(os.path.dirname(os.path.join(root, junk)), exist_ok=True)
  with open(os.path.join(root, junk), 'wb') as f:
    f.write(b'\0\5\26\7' + b'\0' * 60)
  expect['skipped'][junk] = 'macOS metadata file'
  with open(os.path.join(root, d, 'notes.txt'), 'w') as f:
    f.write('not audio\n')
  return expect


if __name__ == '__main__':
  import argparse
  ap = argparse.ArgumentParser()
  ap.add_argument('root')
  ap.add_argument('--layout', default='flat', choices=['flat', 'nested', 'both'])
  ap.add_argument('--full', action='store_true')
  args = ap.parse_args()
  e = make(args.root, layout=args.layout, full=args.full, actors=tuple(range(1, 25)) if args.full else (1, 2))
  print(f"{len(e['examples'])} examples, {len(e['skipped'])} skipped files written to {args.root}")
