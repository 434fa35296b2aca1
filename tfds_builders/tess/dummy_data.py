"""A small TESS in its real layouts, oddities included (tests).

    python -m tfds_builders.tess.dummy_data DIR [--layout kaggle]
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

RATE = 24_414
KAGGLE = 'TESS Toronto emotional speech set data'
# The real folder names, inconsistent case and spelling included.
FOLDERS = {
    ('OAF', 'angry'): 'OAF_angry', ('OAF', 'disgust'): 'OAF_disgust',
    ('OAF', 'fear'): 'OAF_Fear', ('OAF', 'happy'): 'OAF_happy',
    ('OAF', 'neutral'): 'OAF_neutral', ('OAF', 'ps'): 'OAF_Pleasant_surprise',
    ('OAF', 'sad'): 'OAF_Sad', ('YAF', 'angry'): 'YAF_angry',
    ('YAF', 'disgust'): 'YAF_disgust', ('YAF', 'fear'): 'YAF_fear',
    ('YAF', 'happy'): 'YAF_happy', ('YAF', 'neutral'): 'YAF_neutral',
    ('YAF', 'ps'): 'YAF_pleasant_surprised', ('YAF', 'sad'): 'YAF_sad',
}
WORDS = ('back', 'bar', 'base')


def make(root, *, layout: str = 'plain', words=WORDS, oddities: bool = True,
         seconds: float = 0.3) -> dict:
  """Writes a TESS-like corpus under root.

  layout: 'plain' (root/OAF_angry/...), 'kaggle' (root/<KAGGLE>/<KAGGLE>/
  OAF_angry/...) or 'kaggle_both' (the folders both once and twice nested:
  every file twice).
  Returns {'examples': {rel: fields}, 'skipped': {rel: reason key}, 'notes':
  {rel: note start}, 'resampled', 'aiff', 'stereo'}.
  """
  root = os.fspath(root)
  expect = {'examples': {}, 'skipped': {}, 'notes': {}, 'resampled': [], 'aiff': [],
            'stereo': []}
  bases = {'plain': [''], 'kaggle': [f'{KAGGLE}/{KAGGLE}/'],
           'kaggle_both': [f'{KAGGLE}/', f'{KAGGLE}/{KAGGLE}/']}[layout]
  seed = 0
  for (spk, emo), folder in FOLDERS.items():
    for i, word in enumerate(words):
      seed += 1
      name = f'{spk}_{word}_{emo}.wav'
      kw, rate, channels = {}, RATE, 1
      if oddities and (spk, emo, i) == ('YAF', 'happy', 0):
        kw = {'fmt': 'AIFF'}
      elif oddities and (spk, emo, i) == ('OAF', 'sad', 1):
        rate = 22_050
      elif oddities and (spk, emo, i) == ('YAF', 'disgust', 2):
        channels = 2
      elif oddities and (spk, emo, i) == ('OAF', 'ps', 0):
        kw = {'extra_chunks': True}
      elif oddities and (spk, emo, i) == ('OAF', 'neutral', 2):
        name = f'OA_{word}_{emo}.wav'        # as in the real corpus
      data = common.dummy_signal(seconds + 0.01 * i, rate, seed, channels)
      for k, base in enumerate(bases):
        rel = f'{base}{folder}/{name}'
        common.write_audio(os.path.join(root, rel), data, rate, **kw)
        if k:
          expect['skipped'][rel] = 'duplicate recording'
          continue
        expect['examples'][rel] = {'speaker': spk, 'word': word, 'label': emo,
                                   'frames': len(data), 'rate': rate}
        if kw.get('fmt') == 'AIFF':
          expect['aiff'].append(rel)
        if rate != RATE:
          expect['resampled'].append(rel)
        if channels > 1:
          expect['stereo'].append(rel)
        if name.startswith('OA_'):
          expect['notes'][rel] = 'named with speaker prefix'
  if not oddities:
    return expect
  b = bases[0]
  # Kept: a file whose name and folder disagree (the name wins).
  rel = f'{b}YAF_sad/YAF_bean_angry.wav'
  common.write_audio(os.path.join(root, rel), common.dummy_signal(0.3, RATE, 90), RATE)
  expect['examples'][rel] = {'speaker': 'YAF', 'word': 'bean', 'label': 'angry',
                             'frames': int(round(0.3 * RATE)), 'rate': RATE}
  expect['notes'][rel] = 'labelled'
  # Skipped: empty, unparseable names.
  with open(os.path.join(root, f'{b}OAF_angry/OAF_bath_angry.wav'), 'wb'):
    pass
  expect['skipped'][f'{b}OAF_angry/OAF_bath_angry.wav'] = 'empty file'
  for rel in [f'{b}OAF_angry/OAF_bone.wav', f'{b}OAF_angry/XYZ_bone_angry.wav',
              f'{b}YAF_fear/YAF_bone_scared.wav', f'{b}YAF_fear/YAF__fear.wav']:
    common.write_audio(os.path.join(root, rel), common.dummy_signal(0.2, RATE, 91), RATE)
    expect['skipped'][rel] = 'unparseable name'
  return expect


if __name__ == '__main__':
  import argparse
  ap = argparse.ArgumentParser()
  ap.add_argument('root')
  ap.add_argument('--layout', default='plain', choices=['plain', 'kaggle', 'kaggle_both'])
  args = ap.parse_args()
  e = make(args.root, layout=args.layout)
  print(f"{len(e['examples'])} examples, {len(e['skipped'])} skipped files written to {args.root}")
