"""End-to-end training on the tiny synthetic corpus: train, resume, evaluate, predict."""
import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from configs import selfattn_gender
from ser_jax import input_pipeline
from ser_jax import neural_experiment
from ser_jax import predict
from ser_jax import sharding
from ser_jax.trainers import neural as train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


def tiny_config(data_dir, **overrides):
  config = selfattn_gender.get_config('tiny')
  config.data.data_dir = data_dir
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


@pytest.fixture(scope='module')
def trained(data_dir, tmp_path_factory):
  """One tiny run shared by several tests: (config, workdir, results)."""
  config = tiny_config(data_dir)
  workdir = str(tmp_path_factory.mktemp('run'))
  results = train.train_and_evaluate(config, workdir)
  return config, workdir, results


def _history(workdir):
  with open(os.path.join(workdir, 'history.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_train_and_evaluate_writes_results(trained):
  config, workdir, results = trained
  for split in ('validation', 'test'):
    r = results[split]
    assert 0.0 <= r['uar'] <= 1.0 and 0.0 <= r['wa'] <= 1.0
    assert r['classes'] == list(config.data.classes)
    assert np.asarray(r['confusion']).sum() == r['num_examples'] > 0
  speakers = results['speakers']
  assert not set(speakers['test']) & (set(speakers['train']) | set(speakers['validation']))
  with open(os.path.join(workdir, 'results.json')) as f:
    assert json.load(f)['test']['uar'] == results['test']['uar']
  assert os.path.exists(os.path.join(workdir, 'config.json'))
  history = _history(workdir)
  assert [h['epoch'] for h in history] == [1.0, 2.0]
  # The evaluated checkpoint is the one with the best validation UAR.
  best = max(history, key=lambda h: (h['val_uar'], -h['step']))
  assert results['checkpoint_step'] == best['step']


def test_the_evaluated_checkpoint_is_the_best_by_the_selection_mode_not_the_latest(
    trained, tmp_path):
  config, workdir, _ = trained
  val_uar = {h['step']: h['val_uar'] for h in _history(workdir)}
  exp = neural_experiment.build_experiment(config)
  picked = {}
  for mode, sign in (('max', 1), ('min', -1)):
    cfg = config.copy_and_resolve_references()
    cfg.selection.mode = mode
    ckpt = train.make_checkpoints(cfg, workdir)
    kept = ckpt.all_steps()
    assert len(kept) >= 2
    results = train.evaluate_checkpoint(exp, ckpt, str(tmp_path / mode), splits=('validation',))
    picked[mode] = results['checkpoint_step']
    # the best kept step by the mode, the earliest among ties
    assert picked[mode] == max(kept, key=lambda s: (sign * val_uar[s], -s))
  # With two or more steps kept, one of the two modes picks a step other than the latest.
  assert set(picked.values()) != {kept[-1]}


def test_restart_resumes_from_checkpoint_step(trained, data_dir):
  config, workdir, results = trained
  last = _history(workdir)[-1]['step']
  more = tiny_config(data_dir, num_epochs=config.num_epochs + 1)
  train.train_and_evaluate(more, workdir)
  history = _history(workdir)
  # Training continued after the saved step instead of starting again.
  assert [h['step'] for h in history] == [last // 2, last, last + last // 2]
  # A finished run restarted does no more training.
  train.train_and_evaluate(more, workdir)
  assert len(_history(workdir)) == 3


def test_normalisation_statistics_are_checkpointed(trained):
  config, workdir, _ = trained
  exp = neural_experiment.build_experiment(config)
  expected = jax.device_get(train.compute_norm_stats(exp, exp.segments['train']))
  ckpt, _ = neural_experiment.resolve_checkpoint(workdir, None, config.selection)
  state, _ = neural_experiment.restore_for_eval(exp, ckpt)
  np.testing.assert_allclose(jax.device_get(state.norm['mean']), expected['mean'], rtol=1e-5)
  np.testing.assert_allclose(jax.device_get(state.norm['std']), expected['std'], rtol=1e-5)
  assert np.abs(expected['mean']).max() > 1  # real statistics, not the identity


def test_nonfinite_loss_keeps_parameters(trained):
  config, _, _ = trained
  config = config.copy_and_resolve_references()
  config.ema_decay = 0.9   # so the moving average is guarded too
  exp = neural_experiment.build_experiment(config)
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  norm = jax.device_get(state.norm)
  state = state.replace(norm={'mean': state.norm['mean'],
                              'std': state.norm['std'] * jnp.nan})
  before = jax.device_get((state.params, state.opt_state, state.ema))
  batch = next(input_pipeline.train_batches(exp.segments['train'], config.batch_size, 0))
  step = train.make_train_step(exp)
  state, metrics = step(state, sharding.shard_batch(batch, exp.mesh))
  assert bool(metrics['nonfinite'])
  # Parameters, the optimiser's moments and the average are all kept as they were.
  jax.tree.map(np.testing.assert_array_equal, before,
               jax.device_get((state.params, state.opt_state, state.ema)))
  # and the next good step trains from them: everything finite and moved.
  state, metrics = step(state.replace(norm=norm), sharding.shard_batch(batch, exp.mesh))
  assert not bool(metrics['nonfinite'])
  after = jax.device_get((state.params, state.opt_state, state.ema))
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(after))
  assert any(not np.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(before[0]), jax.tree.leaves(after[0])))


def test_predict_files_and_bad_input(trained, tmp_path):
  config, workdir, _ = trained
  t = np.arange(int(1.7 * 44100)) / 44100
  tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
  good = str(tmp_path / 'stereo_44k.wav')
  sf.write(good, np.stack([tone, 0.5 * tone], axis=1), 44100)
  garbage = str(tmp_path / 'garbage.wav')
  with open(garbage, 'wb') as f:
    f.write(b'not audio at all' * 10)
  empty = str(tmp_path / 'empty.wav')
  open(empty, 'wb').close()
  short = str(tmp_path / 'short.wav')
  sf.write(short, tone[:4410], 44100)    # 0.1 s: one 1 s segment, 90 % padding
  missing = str(tmp_path / 'missing.wav')
  no_audio = tmp_path / 'no_audio'
  no_audio.mkdir()
  (no_audio / 'notes.txt').write_text('x')
  assert predict.expand_paths(f'{good},{no_audio}') == [good, str(no_audio)]
  assert 'folder without audio files' in next(
      predict.predict_files(config, workdir, [str(no_audio)]))['error']
  out = list(predict.predict_files(config, workdir, [good, garbage, empty, short, missing]))
  assert out[0]['emotion'] in config.data.classes
  assert sum(out[0]['probabilities'].values()) == pytest.approx(1.0, abs=1e-3)
  assert out[0]['segments'] == 2  # 1.7 s with 1 s segments
  assert 'error' in out[1] and 'error' in out[2]
  assert out[4]['error'] == f'{missing}: no such file'
  # Trained on the synthetic corpus: every answer says so; a short clip says how
  # much of its input was padding.
  synthetic = [w for w in out[0]['warnings'] if 'synthetic corpus' in w]
  assert len(synthetic) == 1 and 'not speech' in synthetic[0]
  assert len(out[0]['warnings']) == 1
  assert predict.short_clip_warning(47990, 48000, 16000) is None   # 3.00 s: not short
  assert '(6 %)' in predict.short_clip_warning(45000, 48000, 16000)
  padded = [w for w in out[3]['warnings'] if 'shorter than one' in w]
  assert padded == ['clip is 0.10 s, shorter than one 1.00 s segment: 0.90 s (90 %) of its '
                    'input is zero padding']


def test_predict_batches_across_files_with_the_answers_of_one_at_a_time(trained, tmp_path,
                                                                         monkeypatch):
  """A folder is predicted files_per_call files at a time, their segments sharing
  batches (and a bad file among them); each answer is the one the file gets alone."""
  config, workdir, _ = trained
  rng = np.random.default_rng(0)
  paths = []
  for i, seconds in enumerate([0.4, 1.0, 1.7, 2.6, 3.1, 0.9, 1.3, 2.2, 1.0, 0.6, 2.9]):
    path = str(tmp_path / f'c{i:02d}.wav')
    sf.write(path, 0.2 * rng.standard_normal(int(seconds * 16000)).astype(np.float32), 16000)
    paths.append(path)
  (tmp_path / 'bad.wav').write_bytes(b'not audio')
  paths.insert(4, str(tmp_path / 'bad.wav'))
  real_load = predict.load_predictor
  for gender in (None, 'male'):
    predictor = real_load(config, workdir, None, gender)
    if gender is None:   # both gender inputs: several calls, one with the bad file
      assert predictor.files_per_call < len(paths) - 1
    sizes = []   # files per call of the predictor predict_files uses

    def recording(*args, sizes=sizes):
      p = real_load(*args)
      return dataclasses.replace(p, many=lambda audios: sizes.append(len(audios)) or p.many(audios))

    monkeypatch.setattr(predict, 'load_predictor', recording)
    out = list(predict.predict_files(config, workdir, paths, gender))
    monkeypatch.setattr(predict, 'load_predictor', real_load)
    assert [r['path'] for r in out] == paths and 'error' in out[4]
    assert sum(sizes) == len(paths) - 1 and max(sizes) > 1
    assert len(sizes) == -(-len(paths) // predictor.files_per_call)
    for path, r in zip(paths, out):
      if 'error' in r:
        continue
      probs, fields = predictor(predict.load_audio(path, 16000))
      np.testing.assert_allclose(list(r['probabilities'].values()), probs, atol=1e-5)
      assert r['segments'] == fields['segments']
    assert [r['segments'] for r in out if 'error' not in r][:3] == [1, 1, 2]


def test_no_synthetic_caveat_for_a_real_corpus(trained, tmp_path):
  config, workdir, _ = trained
  real = tiny_config(config.data.data_dir)
  real.data.name = 'ravdess'
  assert predict.trained_on_synthetic(real, None) is None
  assert predict.trained_on_synthetic(real, workdir)   # the workdir's config.json wins
  assert predict.trained_on_synthetic(config, str(tmp_path)) # no config.json: the config's


def test_missing_corpus_names_tfds_build(tmp_path):
  proc = subprocess.run(
      [sys.executable, 'run.py', '--config=configs/selfattn_gender.py',
       f'--workdir={tmp_path}/w', f'--config.data.data_dir={tmp_path}/empty'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert 'tfds build tfds_builders/iemocap --manual_dir=' in proc.stderr


_MULTI_DEVICE = r'''
import jax, numpy as np
from configs import selfattn_gender
from ser_jax import input_pipeline, neural_experiment, sharding
from ser_jax.trainers import neural as train
assert jax.device_count() == 8, jax.devices()
config = selfattn_gender.get_config('tiny')
config.data.data_dir = DATA_DIR
losses = {}
for n in (1, 8):
  mesh = sharding.make_mesh(jax.devices()[:n])
  exp = neural_experiment.build_experiment(config, mesh)
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
  step = train.make_train_step(exp)
  batches = input_pipeline.train_batches(exp.segments['train'], config.batch_size, 0)
  out = []
  for _ in range(3):
    batch = sharding.shard_batch(next(batches), mesh)
    if n == 8:
      assert len(batch['audio'].sharding.device_set) == 8
    state, m = step(state, batch)
    out.append(float(m['loss']))
  losses[n] = out
print('LOSSES', losses)
np.testing.assert_allclose(losses[1], losses[8], rtol=2e-4)
'''


def test_eight_devices_match_one(data_dir, trained):
  del trained  # the corpus is built
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8')
  code = _MULTI_DEVICE.replace('DATA_DIR', repr(data_dir))
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  assert 'LOSSES' in proc.stdout


_LOAD_SAVED_MODEL = r'''
import json, sys
import numpy as np, soundfile as sf, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
wave, sr = sf.read(sys.argv[2], dtype='float32')
out = model.signatures['serving_default'](waveform=tf.constant(wave), gender=tf.constant(-1))
names = [c.decode() for c in model.class_names.numpy()]
try:
  model.signatures['serving_default'](waveform=tf.zeros([0]), gender=tf.constant(-1))
  empty = 'answered'
except tf.errors.InvalidArgumentError as e:
  empty = e.message
# Loaded and answered without the training code (TF may import jax for Keras).
assert not {m.split('.')[0] for m in sys.modules} & {'ser_jax', 'flax', 'optax'}
print(json.dumps({'probabilities': dict(zip(names, out['probabilities'].numpy().tolist())),
                  'segments': int(out['segments']), 'empty': empty}))
'''


def test_export_runs_without_the_training_code(trained, tmp_path, caplog):
  from ser_jax import export
  config, workdir, _ = trained
  out = str(tmp_path / 'saved_model')
  with caplog.at_level('WARNING'):
    info = export.export_saved_model(config, workdir, out)
  assert not [r for r in caplog.records if 'AutoGraph' in r.getMessage()]
  assert info['classes'] == list(config.data.classes)
  rng = np.random.default_rng(0)
  wav = str(tmp_path / 'clip.wav')
  t = np.arange(int(2.4 * 16000)) / 16000
  sf.write(wav, (0.3 * np.sin(2 * np.pi * 150 * t * (1 + 0.1 * t)) + 0.01 * rng.standard_normal(len(t))),
           16000, subtype='PCM_16')
  expected = next(predict.predict_files(config, workdir, [wav]))
  proc = subprocess.run([sys.executable, '-c', _LOAD_SAVED_MODEL, out, wav], cwd=str(tmp_path),
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  assert got['segments'] == expected['segments'] == 3
  assert 'the waveform is empty' in got['empty'], got['empty']   # an error, not an answer
  for c in config.data.classes:
    assert got['probabilities'][c] == pytest.approx(expected['probabilities'][c], abs=2e-4)


def _tree(folder):
  """{relative path: bytes} of every file under folder."""
  out = {}
  for root, _, files in os.walk(folder):
    for f in files:
      path = os.path.join(root, f)
      with open(path, 'rb') as fh:
        out[os.path.relpath(path, folder)] = fh.read()
  return out


def test_evaluate_mode_writes_beside_the_training_results(trained, tmp_path):
  config, workdir, _ = trained
  with open(os.path.join(workdir, 'results.json')) as f:  # other tests may train on
    results = json.load(f)
  run = lambda *flags: subprocess.run(  # noqa: E731
      [sys.executable, 'run.py', '--config=configs/selfattn_gender.py:tiny', f'--workdir={workdir}',
       f'--config.data.data_dir={config.data.data_dir}', '--mode=evaluate', *flags],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  proc = run('--split=tset')   # a bad --split: one line, before any work
  assert proc.returncode == 2 and 'unknown split(s) tset' in proc.stderr, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr and 'Protocol' not in proc.stderr
  before = _tree(workdir)
  proc = run('--split=val,test')   # into WORKDIR/eval
  assert proc.returncode == 0, proc.stderr[-3000:]
  step = results['checkpoint_step']
  assert f'checkpoint step {step} of ' in proc.stdout
  assert f'UAR {100 * results["test"]["uar"]:.2f}%' in proc.stdout
  assert f'UAR {100 * results["validation"]["uar"]:.2f}%' in proc.stdout
  after = _tree(workdir)
  assert {k: v for k, v in after.items() if not k.startswith('eval/')} == before
  for split in ('validation', 'test'):   # beside the training's results, never over them
    assert {f'eval/{split}_step{step}.json', f'eval/confusion_{split}_step{step}.csv',
            f'eval/confusion_{split}_step{step}.png',
            f'eval/per_class_{split}_step{step}.csv'} <= set(after)
    saved = json.loads(after[f'eval/{split}_step{step}.json'])
    assert saved['checkpoint_step'] == step and saved['uar'] == pytest.approx(results[split]['uar'])
  out = str(tmp_path / 'elsewhere')   # e.g. a read-only workdir's evaluation
  proc = run(f'--checkpoint={step}', f'--output_dir={out}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.listdir(out) and _tree(workdir) == after


def test_a_run_computes_the_front_end_once_for_train_and_validation(data_dir, tmp_path,
                                                                      monkeypatch):
  cached = []
  real, real_batches = train.cache_features, input_pipeline.train_batches

  def spy(exp, seg):
    out = real(exp, seg)
    cached.append(len(out.feats))
    return out

  def batches(seg, *args, **kwargs):   # training reads the cached features, not audio
    assert seg.feats is not None
    return real_batches(seg, *args, **kwargs)

  monkeypatch.setattr(train, 'cache_features', spy)
  monkeypatch.setattr(input_pipeline, 'train_batches', batches)
  config = tiny_config(data_dir, num_epochs=2)
  assert config.feature_cache
  results = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert len(cached) == 2 and all(n > 0 for n in cached)     # train and validation, once
  assert results['test']['num_examples'] > 0                 # test: from audio, as before


def test_export_refuses_an_aggregation_its_graph_does_not_write(tmp_path):
  from ser_jax import export
  config = selfattn_gender.get_config('tiny')
  config.aggregation = 'median'
  with pytest.raises(ValueError, match="aggregation='median'"):
    export.export_saved_model(config, str(tmp_path / 'none'), str(tmp_path / 'out'))
  assert not os.path.exists(tmp_path / 'out')
