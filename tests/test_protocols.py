"""A whole protocol in one call: folds × seeds in sub-workdirs, resumable, reported."""
import json
import os

import numpy as np
import pytest

from configs import selfattn_gender
from ser_jax import protocols
from ser_jax import reports
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
  assert 'Ensemble of each fold\'s seeds' in text   # 2 seeds a fold
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


def test_per_corpus_figures_of_a_union_in_reports_and_summary():
  import ml_collections
  import numpy as np
  from ser_jax import evaluate
  from ser_jax import input_pipeline
  classes = ('neutral', 'happy', 'sad')
  speakers = np.asarray(['ravdess:01'] * 3 + ['tess:OAF'] * 3)
  labels = np.asarray([0, 1, 2, 0, 1, 2], np.int32)
  utts = input_pipeline.Utterances([np.zeros(4, np.int16)] * 6, labels, np.zeros(6, np.int32),
                                   speakers, np.asarray([f'f{i}.wav' for i in range(6)]))
  probs = np.eye(3)[[0, 1, 2, 1, 1, 1]]   # ravdess all right; tess: only 'happy' right
  report = evaluate.utterance_report(utts, probs, classes, 'mean', loss=0.0, num_segments=6)
  assert report['per_corpus']['ravdess']['uar'] == 1.0
  assert report['per_corpus']['tess']['wa'] == pytest.approx(1 / 3)
  assert report['per_corpus']['tess']['num_speakers'] == 1
  assert 'tess: UAR 33.33%' in evaluate.format_report('test', report)
  one = evaluate.utterance_report(utts.take(np.arange(3)), probs[:3], classes, 'mean', 0.0, 3)
  assert 'per_corpus' not in one   # a single corpus: the pooled figures are its figures
  config = ml_collections.ConfigDict({'protocol': {'name': 'group_kfold'}})
  results = {(0, 0): {'test': report, 'validation': report, 'speakers': {'test': ['a']}},
             (1, 0): {'test': one, 'validation': one, 'speakers': {'test': ['b']}}}
  summary = protocols.summarize(config, results)
  assert summary['per_corpus']['tess']['folds'] == [0]
  assert summary['per_corpus']['tess']['uar_mean_std'][0] == pytest.approx(100 / 3)


def test_results_row_of_a_one_run_protocol_shows_no_spread(protocol_run, tmp_path):
  # `--config.protocol.folds=0` with one seed: one run, so no "± 0.0".
  import shutil
  from ser_jax import results   # pylint: disable=g-import-not-at-top
  _, workdir, _ = protocol_run
  one = str(tmp_path / 'one')
  shutil.copytree(workdir, one)
  path = os.path.join(one, 'protocol_results.json')
  with open(path) as f:
    res = json.load(f)
  res.update(rows=res['rows'][:1], seeds=[0], num_runs=1)
  with open(path, 'w') as f:
    json.dump(res, f)
  row = results.row(one)
  assert row['runs'] == '1 × 1' and row['uar'][1] is None and row['wa'][1] is None
  line = next(l for l in results.table([row]).splitlines() if '| 1 × 1 |' in l)
  wa, uar = line.split('|')[5:7]
  assert '±' not in wa + uar and float(wa) == pytest.approx(row['wa'][0], abs=0.05)


def test_results_table_of_a_protocol(protocol_run, capsys):
  from ser_jax import results   # pylint: disable=g-import-not-at-top
  config, workdir, summary = protocol_run
  with open(os.path.join(workdir, 'commands.jsonl'), 'a') as f:   # as run.py records it
    f.write(json.dumps({
        'mode': 'train', 'cpu': 'Some CPU', 'cores': 2,
        'command': f'/opt/py/bin/python3 run.py --config=configs/selfattn_gender.py:tiny '
                   f'--config.data.data_dir={config.data.data_dir} --workdir={workdir}'}) + '\n')
  assert results.finished_workdirs([workdir]) == [workdir]
  assert results.finished_workdirs([os.path.join(workdir, 'fold00_seed0')]) == []  # a fold of it
  row = results.row(workdir)
  assert row['system'] == 'configs/selfattn_gender.py:tiny' and row['runs'] == '2 × 2'
  assert row['uar'] == pytest.approx(summary['uar_over_folds'])
  assert row['wa'] == pytest.approx(summary['wa_over_folds'])
  assert row['machine'] == 'Some CPU, 2 cores' and row['minutes'] != '—'
  assert row['command'] == ('python run.py --config=configs/selfattn_gender.py:tiny '
                            '--config.data.data_dir=DATA_DIR --workdir=runs/'
                            + os.path.basename(workdir))
  assert set(row['recall'].split()[::2]) <= {'neu', 'hap', 'sad', 'ang'}
  spaced = (f'python run.py --config configs/selfattn_gender.py:tiny --workdir {workdir} '
            f'--config.data.data_dir {config.data.data_dir}')   # absl's other form
  assert results._config_file(spaced) == 'configs/selfattn_gender.py:tiny'
  assert results.portable_command(spaced, workdir) == (
      'python run.py --config=configs/selfattn_gender.py:tiny --workdir=runs/'
      + os.path.basename(workdir) + ' --config.data.data_dir=DATA_DIR')
  quoted = results.portable_command(
      "python run.py \"--config.data.classes=('neutral','sad')\" --workdir=/x/y", workdir)
  assert quoted == 'python run.py "--config.data.classes=(\'neutral\',\'sad\')" --workdir=runs/' + (
      os.path.basename(workdir))
  assert results._paper('Model 1 (attention): UAR 59.4 % (IEMOCAP); Model 2') == (
      'Model 1: UAR 59.4 %')   # the figure, not a parenthesis before it
  assert results._paper('Sen et al.: accuracy 82.4 % (RAVDESS)') == 'Sen et al.: accuracy 82.4 %'
  kfold = {'name': 'group_kfold', 'k': 5, 'fold': 2}
  assert [results._protocol_name({'protocol': {**kfold, 'folds': f}})
          for f in ('', '0', '0,3', 'all')] == [
      f'group_kfold (k=5, split_seed 0{tail})' for tail in (', fold 2 only', ', fold 0 only',
                                                            ', folds 0,3 only', '')]
  loso = {'protocol': {'name': 'loso'}}
  assert results._protocol({**loso, 'utterance_norm': True}) == 'loso; utterance-normalised'
  assert results._protocol(loso) == 'loso'
  assert results.main([workdir]) == 0
  out = capsys.readouterr().out
  assert out.startswith('| system |') and f'{summary["uar_over_folds"][0]:.1f} ± ' in out
  ens = summary['seed_ensemble']   # 2 folds × 2 seeds: a second row, the ensemble's
  assert [r['seeds'] for r in ens['rows']] == [2, 2]
  assert f'| 2 × 2, ensembled | {ens["test_wa_over_folds"][0]:.1f} ± ' in out
  assert 'seeds ensembled (posteriors averaged)' in out
  assert results.main([workdir + '_missing']) == 2


def test_predict_with_a_protocol_is_the_ensemble_of_its_runs(protocol_run, tmp_path):
  """--mode=predict on a protocol's workdir averages its finished runs' posteriors
  (folds × seeds), in fold then seed order; --checkpoint names one run's, so refused."""
  import soundfile   # pylint: disable=g-import-not-at-top
  from ser_jax import cli   # pylint: disable=g-import-not-at-top
  from ser_jax import predict   # pylint: disable=g-import-not-at-top
  config, workdir, _ = protocol_run
  rng = np.random.default_rng(0)
  paths = []
  for i, seconds in enumerate((0.7, 2.5)):
    paths.append(str(tmp_path / f'clip{i}.wav'))
    soundfile.write(paths[-1], 0.1 * rng.standard_normal(int(16000 * seconds)), 16000)
  names = ['fold00_seed0', 'fold00_seed1', 'fold01_seed0', 'fold01_seed1']
  assert [r[0] for r in protocols.finished_runs(workdir)] == names
  assert protocols.finished_runs(os.path.join(workdir, 'fold00_seed0')) == []
  assert protocols.finished_runs(str(tmp_path / 'nowhere')) == []
  ensemble = list(predict.predict_files(config, workdir, paths, 'female'))
  members = [list(predict.predict_files(protocols.run_config(config, f, s),
                                        os.path.join(workdir, n), paths, 'female'))
             for n, (f, s) in zip(names, [(0, 0), (0, 1), (1, 0), (1, 1)])]
  for i, answer in enumerate(ensemble):
    assert answer['ensemble'] == names and len(answer['checkpoint_steps']) == 4
    expected = np.mean([[m[i]['probabilities'][c] for c in config.data.classes]
                        for m in members], axis=0)
    got = [answer['probabilities'][c] for c in config.data.classes]
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert answer['emotion'] == config.data.classes[int(np.argmax(expected))]
  spread = np.ptp([[m[0]['probabilities'][c] for c in config.data.classes] for m in members], 0)
  assert spread.max() > 1e-3   # the members differ, so the average is a real test
  with pytest.raises(cli.UsageError, match='protocol of 4 runs'):
    predict.load_predictor(config, workdir, '1')


def test_results_row_of_one_folds_seeds_gives_their_spread(protocol_run, tmp_path):
  """One fold × several seeds: ± is over the seeds (over one fold it would be 0)."""
  from ser_jax import results   # pylint: disable=g-import-not-at-top
  config, workdir, _ = protocol_run
  one = dict(config.to_dict(), protocol={**config.protocol.to_dict(), 'folds': '0'})
  runs = {(0, s): json.load(open(os.path.join(workdir, f'fold00_seed{s}', 'results.json')))
          for s in (0, 1)}
  runs[0, 1]['test']['uar'] = 0.5 * runs[0, 0]['test']['uar'] + 0.1   # two seeds that differ
  summary = protocols.summarize(config, runs)
  summary['pooled_test'] = reports.pooled_report(list(runs.values()))   # as the report adds it
  for name, data in (('config.json', one), ('protocol_results.json', summary)):
    with open(tmp_path / name, 'w') as f:
      json.dump(data, f, default=float)
  row = results.row(str(tmp_path))
  uar = [100 * runs[0, s]['test']['uar'] for s in (0, 1)]
  assert row['runs'] == '1 × 2' and row['uar'] == pytest.approx(
      (np.mean(uar), np.std(uar, ddof=1)))
  assert summary['uar_over_folds'][1] == 0 and abs(uar[0] - uar[1]) > 0


def test_seed_ensemble_averages_each_folds_posteriors():
  import ml_collections
  classes = ['neutral', 'happy', 'sad']

  def report(probs, labels=('neutral', 'happy', 'sad', 'sad')):
    return {'classes': classes, 'uar': 0.0, 'wa': 0.0, 'per_class': {}, 'predictions': [
        {'path': f'f{i}.wav', 'speaker': ('ravdess:01', 'tess:OAF')[i // 2], 'label': y,
         'probabilities': p} for i, (y, p) in enumerate(zip(labels, probs))]}
  # Seed 0 gets utterances 0, 1 right; seed 1 gets 0, 2, 3 right; their mean gets all 4.
  a = report([[.9, .1, 0], [.2, .8, 0], [.1, .5, .4], [.6, 0, .4]])
  b = report([[.7, .3, 0], [.5, .4, .1], [0, .2, .8], [.3, 0, .7]])
  results = {(0, s): {'test': r, 'validation': r, 'speakers': {'test': ['x']}}
             for s, r in enumerate((a, b))}
  results[1, 0] = results[0, 0]   # a fold with one seed has no ensemble
  summary = protocols.summarize(ml_collections.ConfigDict({'protocol': {'name': 'loso'}}),
                                results)
  ens = summary['seed_ensemble']
  assert [(r['fold'], r['seeds']) for r in ens['rows']] == [(0, 2)]
  assert ens['rows'][0]['test_wa'] == pytest.approx(100.0)
  assert ens['rows'][0]['test_uar'] == pytest.approx(100.0)
  assert ens['pooled_test_per_class']['sad']['recall'] == 1.0
  assert ens['per_corpus_uar_mean_std'] == {'ravdess': (100.0, 0.0), 'tess': (100.0, 0.0)}
  # Seed 0 alone is right on ravdess's two, wrong on tess's two: per corpus, 100 and 0.
  assert protocols.ensemble_report([a, a])['per_corpus_uar'] == {'ravdess': 100.0, 'tess': 0.0}
  only_one = {k: v for k, v in results.items() if k != (0, 1)}
  assert 'seed_ensemble' not in protocols.summarize(
      ml_collections.ConfigDict({'protocol': {'name': 'loso'}}), only_one)
  b['predictions'][0]['path'] = 'other.wav'
  with pytest.raises(ValueError, match='different utterances'):
    protocols.seed_ensemble(results)


def test_transductive_and_leaky_labels_for_either_trainer():
  from configs import combined_best, svm_features  # pylint: disable=g-import-not-at-top
  from ser_jax import results, trainers  # pylint: disable=g-import-not-at-top
  loso = {'protocol': {'name': 'loso'}}
  transductive = 'loso; speaker-normalised (transductive)'
  assert results._protocol({**loso, 'speaker_norm': True}) == transductive
  assert results._protocol({**loso, 'svm': {'speaker_norm': True}}) == transductive
  assert results._protocol({**loso, 'speaker_norm': False, 'svm': {'speaker_norm': False}}) == 'loso'
  leaky = 'leaky: variants of test files are trained on'
  assert leaky in results._protocol(
      {**loso, 'svm': {'augment': True, 'augment_before_split': True}})
  assert leaky in results._protocol(
      {**loso, 'augment': {'offline': {'enabled': True, 'before_split': True}}})
  assert leaky not in results._protocol(
      {**loso, 'augment': {'offline': {'enabled': True, 'before_split': False}}})
  # The labels on configs as the trainers get them, from the fields each declares.
  assert trainers.labels(combined_best.get_config())['transductive']
  assert trainers.labels(combined_best.get_config('inductive')) == {
      'transductive': False, 'leaky': False}
  svm = svm_features.get_config()
  assert trainers.labels(svm) == {'transductive': False, 'leaky': False}
  svm.svm.speaker_norm = True
  svm.speaker_norm = False   # the neural field: not the SVM's
  assert trainers.labels(svm)['transductive']
  svm.svm.speaker_norm = False
  svm.speaker_norm = True
  assert not trainers.labels(svm)['transductive']
  svm.svm.augment = svm.svm.augment_before_split = True
  assert trainers.labels(svm)['leaky']
  with pytest.raises(ValueError, match='unknown trainer'):
    trainers.labels({'trainer': 'nope'})
