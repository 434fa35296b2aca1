"""Times `tfds build` of a RAVDESS-sized corpus (issue 3's goal: <= 30 s on 2 cores).

    python benchmarks/build_datasets.py [--cli] [--workers N] [--keep DIR]

Writes 1,440 files in RAVDESS's real layout (Audio_Speech_Actors_01-24/
Actor_NN/03-01-EE-II-SS-RR-NN.wav, 24 actors x 60, 48 kHz 16-bit, 3.0-4.4 s,
mean ~3.7 s; every 97th file stereo, every 10th with extra RIFF chunks) into a
temporary folder, then builds the `ravdess` TFDS dataset from it, in process
(`download_and_prepare`, the default) or through the `tfds build` CLI
(`--cli`, which adds the CLI's start-up: importing TensorFlow and TFDS).
Prints files/s and the total seconds of the build (generation not counted).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tfds_builders import cli  # noqa: E402
from tfds_builders import common  # noqa: E402
from tfds_builders.ravdess import dummy_data  # noqa: E402

RATE = 48_000


def generate(root: pathlib.Path, actors: int = 24, seconds: float = 3.7) -> int:
  """The corpus under root; returns the number of files."""
  jobs = []
  for actor in range(1, actors + 1):
    for name in dummy_data.full_actor(actor):
      jobs.append((actor, name, len(jobs)))

  def write(job):
    actor, name, i = job
    dur = seconds + 0.7 * ((i * 37 % 101) / 50.0 - 1.0)   # 3.0 .. 4.4 s
    data = common.dummy_signal(dur, RATE, i, channels=2 if i % 97 == 5 else 1)
    common.write_audio(root / dummy_data.NESTED / f'Actor_{actor:02d}' / name, data,
                       RATE, extra_chunks=i % 10 == 3)

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    list(pool.map(write, jobs))
  return len(jobs)


def build_in_process(manual_dir, data_dir, workers=None) -> float:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_builders.ravdess import ravdess_dataset_builder as rb  # pylint: disable=g-import-not-at-top
  if workers:
    os.environ['SER_JAX_DECODE_WORKERS'] = str(workers)
  builder = rb.Builder(data_dir=str(data_dir))
  t0 = time.perf_counter()
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  elapsed = time.perf_counter() - t0
  n = builder.info.splits[common.ALL_SPLIT].num_examples
  assert n == 1440, n
  return elapsed


def build_cli(manual_dir, data_dir) -> float:
  t0 = time.perf_counter()
  cli.run_build('ravdess', '--config=16k', f'--manual_dir={manual_dir}', f'--data_dir={data_dir}',
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  return time.perf_counter() - t0


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--cli', action='store_true', help='time the `tfds build` CLI')
  ap.add_argument('--workers', type=int, default=None, help='decoding threads')
  ap.add_argument('--keep', default=None, help='write the corpus here and keep it')
  args = ap.parse_args()
  tmp = pathlib.Path(tempfile.mkdtemp(prefix='ser_bench_'))
  manual = pathlib.Path(args.keep) if args.keep else tmp / 'ravdess'
  try:
    t0 = time.perf_counter()
    if not (manual / dummy_data.NESTED).exists():
      n = generate(manual)
      print(f'generated {n} files in {time.perf_counter() - t0:.1f} s under {manual}')
    n = 1440
    secs = (build_cli if args.cli else build_in_process)(
        manual, tmp / 'data', *([] if args.cli else [args.workers]))
    how = 'tfds build (CLI, incl. start-up)' if args.cli else 'download_and_prepare'
    print(f'{how}: {n} files in {secs:.1f} s = {n / secs:.0f} files/s '
          f'({os.cpu_count()} CPUs)')
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  main()
