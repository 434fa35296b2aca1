"""A small CREMA-D in its real layout, oddities included (tests).

    python -m tfds_builders.crema_d.dummy_data DIR
"""
from __future__ import annotations

import os
import shutil
import sys

try:
  from tfds_builders import common
except ImportError:
  import pathlib
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common

RATE = 16_000
# (actor, age, sex, race, ethnicity) as in VideoDemographics.csv.
ACTORS = [('1001', 51, 'Male', 'Caucasian', 'Not Hispanic'),
          ('1002', 21, 'Female', 'Caucasian', 'Not Hispanic'),
          ('1003', 21, 'Female', 'Caucasian', 'Not Hispanic'),
          ('1004', 42, 'Female', 'Caucasian', 'Not Hispanic'),
          ('1005', 29, 'Male', 'African American', 'Not Hispanic')]
_PLAN = [('IEO', 'HAP', 'HI'), ('IEO', 'HAP', 'LO'), ('IEO', 'NEU', 'XX'),
         ('DFA', 'ANG', 'XX'), ('TIE', 'SAD', 'XX'), ('IWW', 'FEA', 'XX'),
         ('MTI', 'DIS', 'XX'), ('IEO', 'SAD', 'MD')]


def make(root, *, actors=ACTORS, oddities: bool = True, seconds: float = 0.3) -> dict:
  """Writes <root>/AudioWAV/*.wav and <root>/VideoDemographics.csv.

  Returns {'examples': {rel: fields}, 'skipped': {rel: reason key}, 'silent',
  'identical': [(rel, rel)], 'actors': {id: (age, sex, race, ethnicity)}}.
  """
  root = os.fspath(root)
  os.makedirs(os.path.join(root, 'AudioWAV'), exist_ok=True)
  expect = {'examples': {}, 'skipped': {}, 'silent': [], 'identical': [], 'actors': {}}
  with open(os.path.join(root, 'VideoDemographics.csv'), 'w', newline='') as f:
    f.write('ActorID,Age,Sex,Race,Ethnicity\r\n')
    for a, age, sex, race, eth in actors:
      f.write(f'{a},{age},{sex},{race},{eth}\r\n')
      expect['actors'][a] = (age, sex.lower(), race, eth)
  seed = 0
  for a, *_ in actors:
    for i, (sentence, emo, level) in enumerate(_PLAN[:4 if a > '1002' else None]):
      seed += 1
      rel = f'AudioWAV/{a}_{sentence}_{emo}_{level}.wav'
      data = common.dummy_signal(seconds + 0.02 * i, RATE, seed)
      common.write_audio(os.path.join(root, rel), data, RATE)
      expect['examples'][rel] = {'speaker': a, 'sentence': sentence, 'label': emo,
                                 'level': level, 'frames': len(data)}
  if not oddities:
    return expect
  a = actors[0][0]

  def add(rel, data, rate=RATE, **kw):
    common.write_audio(os.path.join(root, rel), data, rate, **kw)
    s, e, l = os.path.basename(rel)[:-4].split('_')[1:]
    expect['examples'][rel] = {'speaker': rel.split('/')[-1][:4], 'sentence': s,
                               'label': e, 'level': l, 'frames': len(data), 'rate': rate}
    return rel

  # Kept: an all-zero clip; a byte-identical pair under different labels; a
  # stereo clip at 44.1 kHz; a clip with extra RIFF chunks.
  expect['silent'].append(add(f'AudioWAV/{a}_TAI_NEU_XX.wav', 0 * common.dummy_signal(0.4, RATE, 0)))
  first = add(f'AudioWAV/{a}_ITS_ANG_XX.wav', common.dummy_signal(0.3, RATE, 99))
  second = f'AudioWAV/{actors[1][0]}_ITS_DIS_XX.wav'
  shutil.copyfile(os.path.join(root, first), os.path.join(root, second))
  expect['examples'][second] = dict(expect['examples'][first], speaker=actors[1][0], label='DIS')
  expect['identical'].append((first, second))
  add(f'AudioWAV/{a}_IWL_HAP_XX.wav', common.dummy_signal(0.3, 44_100, 5, channels=2), 44_100)
  add(f'AudioWAV/{a}_ITH_FEA_XX.wav', common.dummy_signal(0.3, RATE, 6), extra_chunks=True)
  # Skipped: no demographics row, empty, LFS pointer, unparseable names.
  for rel in ['AudioWAV/1092_DFA_ANG_XX.wav', 'AudioWAV/1093_IEO_SAD_LO.wav']:
    common.write_audio(os.path.join(root, rel), common.dummy_signal(0.2, RATE, 7), RATE)
    expect['skipped'][rel] = 'no demographics row'
  for rel, why, content in [
      (f'AudioWAV/{a}_WSI_SAD_XX.wav', 'empty file', b''),
      (f'AudioWAV/{a}_TSI_HAP_XX.wav', 'git-lfs pointer',
       b'version https://git-lfs.github.com/spec/v1\noid sha256:' + b'0' * 64 + b'\nsize 72044\n')]:
    with open(os.path.join(root, rel), 'wb') as f:
      f.write(content)
    expect['skipped'][rel] = why
  for rel in [f'AudioWAV/{a}_DFA_ANG.wav', f'AudioWAV/{a}_DFA_XYZ_XX.wav',
              f'AudioWAV/{a}_ABC_ANG_XX.wav', f'AudioWAV/{a}_DFA_ANG_ZZ.wav']:
    common.write_audio(os.path.join(root, rel), common.dummy_signal(0.2, RATE, 8), RATE)
    expect['skipped'][rel] = 'unparseable name'
  with open(os.path.join(root, 'README.md'), 'w') as f:
    f.write('CREMA-D\n')
  return expect


if __name__ == '__main__':
  e = make(sys.argv[1])
  print(f"{len(e['examples'])} examples, {len(e['skipped'])} skipped files written to {sys.argv[1]}")
