"""A whole protocol in one call: folds × seeds in sub-workdirs, resumable, reported."""
import json
import os

import pytest

from configs import selfattn_gender
from ser_jax import protocols
from ser_jax import splits


@pytest.fixture(scope='module')
def protocol_run(tmp_path_factory):
  config = selfattn_gender.get_config('tiny')
  config.data.data_dir = str(tmp_path_factory.mktemp('tfds'))
  config.protocol.folds = '0,1'
  config.seeds = (0, 1)
  config.num_epochs = 1
  workdir = str(tmp_path_factory.mktemp('protocol'))
  summary = protocols.run_protocol(config, workdir)
  return config, workdir, summary


def test_every_fold_and_seed_runs_in_its_folder(protocol_run):
  _, workdir, summary = protocol_run
  assert summary['num_runs'] == 4 and summary['folds'] == [0, 1] and summary['seeds'] == [0, 1]
  for f in (0, 1):
    for s in (0, 1):
      with open(os.path.join(workdir, f'fold{f:02d}_seed{s}', 'results.json')) as fh:
        r = json.load(fh)
      assert 0 <= r['test']['uar'] <= 1
  row = summary['rows'][0]
  assert row['runs'] == 2 and len(row['uar']) == 2


def test_reports_are_written(protocol_run):
  _, workdir, _ = protocol_run
  for name in ('summary.md', 'protocol_results.json', 'confusion_test_pooled.csv',
               'confusion_test_pooled.png', 'per_class_test_pooled.csv', 'learning_curves.png',
               'splits/fold00.json', 'splits/fold01.json',
               'fold00_seed0/confusion_test.png', 'fold00_seed0/per_class_test.csv',
               'fold00_seed0/learning_curves.png', 'fold00_seed0/splits.json'):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  with open(os.path.join(workdir, 'summary.md')) as f:
    text = f.read()
  assert '| fold |' in text and '± ' in text and 'loso' in text
  with open(os.path.join(workdir, 'splits', 'fold01.json')) as f:
    published = json.load(f)
  splits.check_disjoint(published['speakers'])
  assert published['speakers']['test'] != json.load(
      open(os.path.join(workdir, 'splits', 'fold00.json')))['speakers']['test']


def test_rerun_skips_finished_runs(protocol_run):
  config, workdir, summary = protocol_run
  stamp = os.path.getmtime(os.path.join(workdir, 'fold01_seed1', 'results.json'))
  again = protocols.run_protocol(config, workdir)
  assert os.path.getmtime(os.path.join(workdir, 'fold01_seed1', 'results.json')) == stamp
  assert again['uar_over_folds'] == summary['uar_over_folds']


def test_plan():
  config = selfattn_gender.get_config()  # the paper: 10 folds × 5 seeds
  speakers = {f'Ses0{s}{g}': f'Ses0{s}' for s in range(1, 6) for g in 'FM'}
  assert len(protocols.plan(config, speakers)) == 50
  config.protocol.folds = '3'
  config.seeds = ()
  assert protocols.plan(config, speakers) == [(3, 0)]
  config.protocol.folds = '10'
  with pytest.raises(ValueError, match='out of range'):
    protocols.plan(config, speakers)
