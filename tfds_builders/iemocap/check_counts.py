"""Prints the IEMOCAP subset counts and checks them against the published figures.

    python tfds_builders/iemocap/check_counts.py [--data_dir=~/tensorflow_datasets]
    python tfds_builders/iemocap/check_counts.py --manual_dir=~/corpora/IEMOCAP_full_release

With --data_dir (or TFDS's default) it reads the built `iemocap` dataset (no
audio decoding); with --manual_dir it parses the label files only (seconds, no
build needed). When the full corpus is there (5 sessions, >= 10,000 labelled
turns) the 4-class set with exc merged into hap must be 5,531 turns (ang 1,103 /
hap+exc 1,636 / sad 1,084 / neu 1,708; per session 1,085 / 1,023 / 1,151 /
1,031 / 1,241); exit status 1 if not.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

try:
  from tfds_builders.iemocap import labels, subsets
except ImportError:  # run as a script from anywhere
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders.iemocap import labels, subsets


def counts_from_manual_dir(manual_dir) -> dict:
  root = labels.find_corpus_root(manual_dir)
  if root is None:
    raise FileNotFoundError(f'--manual_dir {manual_dir}: expected {labels.EXPECTED}')
  return subsets.subset_counts(labels.scan_corpus(root).turns)


def counts_from_dataset(data_dir=None) -> tuple[dict, dict | None]:
  """(counts over the stored examples, counts recorded in the metadata)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfds_builders import common  # pylint: disable=g-import-not-at-top
  from tfds_builders.iemocap import iemocap_dataset_builder as ib  # pylint: disable=g-import-not-at-top
  builder = ib.Builder(data_dir=data_dir)
  if not builder.is_prepared():
    raise FileNotFoundError(
        f'iemocap is not built in {builder.data_dir}: run `tfds build tfds_builders/iemocap '
        f'--manual_dir=...` first (or pass --manual_dir here).')
  ds = builder.as_dataset(split=common.ALL_SPLIT, shuffle_files=False,
                          decoders={'audio': tfds.decode.SkipDecoding()})
  ds = ds.map(lambda ex: {k: ex[k] for k in ('label', 'session', 'improvised')})
  counts = subsets.subset_counts(tfds.as_numpy(ds))
  meta = builder.info.metadata or {}
  return counts, meta.get(ib.SUBSET_COUNTS_KEY)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data_dir', default=None, help='TFDS data dir of the build')
  parser.add_argument('--manual_dir', default=None,
                      help='count the label files of this IEMOCAP copy instead')
  args = parser.parse_args(argv)
  status = 0
  if args.manual_dir:
    counts = counts_from_manual_dir(args.manual_dir)
    print(subsets.format_counts(counts, f'IEMOCAP label files in {args.manual_dir}'))
  else:
    counts, recorded = counts_from_dataset(args.data_dir)
    print(subsets.format_counts(counts, 'IEMOCAP dataset'))
    if recorded is not None and recorded != counts:
      print('MISMATCH: the dataset differs from the counts recorded at build time')
      status = 1
  if subsets.is_full_corpus(counts):
    diffs = subsets.published_mismatches(counts)
    if diffs:
      print('MISMATCH with the published figures: ' + '; '.join(diffs))
      status = 1
    else:
      print('OK: four_class = 5,531 turns, as published (per class and per session).')
  else:
    print('Not the full corpus (5 sessions, >= 10,000 labelled turns): counts printed, '
          'not checked against the published figures.')
  return status


if __name__ == '__main__':
  sys.exit(main())
