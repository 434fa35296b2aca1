"""A small SAVEE in its real layouts, oddities included (tests).

    python -m tfds_builders.savee.dummy_data DIR [--layout ALL]
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

RATE = 44_100
SPEAKERS = ('DC', 'JE', 'JK', 'KL')
PREFIXES = ('a', 'd', 'f', 'h', 'n', 'sa', 'su')


def make(root, *, layout: str = 'AudioData', speakers=SPEAKERS, takes: int = 2,
         oddities: bool = True, seconds: float = 0.3) -> dict:
  """Writes a SAVEE-like corpus under root.

  layout: 'AudioData' (root/AudioData/DC/sa01.wav), 'ALL' (root/ALL/DC_sa01.wav)
  or 'both' (every file in both; the ALL/ copy is kept).
  Returns {'examples': {rel: fields}, 'skipped': {rel: reason key}, 'stereo'}.
  """
  root = os.fspath(root)
  expect = {'examples': {}, 'skipped': {}, 'stereo': []}
  # 'both': the shallower copy (ALL/) is the one a build keeps.
  layouts = ['ALL', 'AudioData'] if layout == 'both' else [layout]
  seed = 0
  for spk in speakers:
    for emo in PREFIXES:
      for take in range(1, (2 * takes if emo == 'n' else takes) + 1):
        seed += 1
        channels = 2 if oddities and (spk, emo, take) == (speakers[0], 'su', 1) else 1
        data = common.dummy_signal(seconds + 0.01 * take, RATE, seed, channels)
        for k, lay in enumerate(layouts):
          rel = (f'AudioData/{spk}/{emo}{take:02d}.wav' if lay == 'AudioData'
                 else f'ALL/{spk}_{emo}{take:02d}.wav')
          common.write_audio(os.path.join(root, rel), data, RATE,
                             extra_chunks=oddities and take == 2 and emo == 'h')
          if k:
            expect['skipped'][rel] = 'duplicate recording'
            continue
          expect['examples'][rel] = {'speaker': spk, 'label': emo, 'take': take,
                                     'frames': len(data)}
          if channels > 1:
            expect['stereo'].append(rel)
  if not oddities:
    return expect
  d = 'AudioData/DC/' if layouts[0] == 'AudioData' else 'ALL/DC_'
  with open(os.path.join(root, f'{d}sa99.wav'), 'wb'):
    pass
  expect['skipped'][f'{d}sa99.wav'] = 'empty file'
  bad = ([f'{d}s01.wav', f'{d}x01.wav', f'{d}sad.wav']
         + (['AudioData/XY/a01.wav', 'AudioData/a01.wav'] if layouts[0] == 'AudioData'
            else ['ALL/XY_a01.wav', 'ALL/a01.wav']))
  for rel in bad:
    common.write_audio(os.path.join(root, rel), common.dummy_signal(0.2, RATE, 0), RATE)
    expect['skipped'][rel] = 'unknown speaker' if 'XY' in rel else 'unparseable name'
  with open(os.path.join(root, layouts[0], 'Info.txt'), 'w') as f:
    f.write('SAVEE\n')
  return expect


if __name__ == '__main__':
  import argparse
  ap = argparse.ArgumentParser()
  ap.add_argument('root')
  ap.add_argument('--layout', default='AudioData', choices=['AudioData', 'ALL', 'both'])
  args = ap.parse_args()
  e = make(args.root, layout=args.layout)
  print(f"{len(e['examples'])} examples, {len(e['skipped'])} skipped files written to {args.root}")
