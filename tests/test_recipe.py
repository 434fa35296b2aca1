"""The training recipe's parts on the tiny corpus: bf16 compute, on-line and
offline augmentation, the feature cache, speaker normalisation, class balance,
mixup and the moving average of the weights. (Split from test_resume.py so that
pytest-xdist's two workers can share the load.)"""
import dataclasses
import json
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile

from ser_jax import experiment
from ser_jax import features
from ser_jax import input_pipeline
from ser_jax import neural_experiment
from ser_jax import predict
from ser_jax import sharding
from ser_jax import trainers
from ser_jax.trainers import neural as train
import test_resume
from test_resume import _assert_trees_equal, _tiny


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return test_resume.tiny_corpus_dir(tmp_path_factory)


def test_bfloat16_compute_trains(data_dir):
  config = _tiny(data_dir)
  config.model.dtype = 'bfloat16'
  exp = neural_experiment.build_experiment(config)
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
  state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
  batch = sharding.shard_batch(next(input_pipeline.train_batches(exp.segments['train'], 8, 0)),
                               exp.mesh)
  step = train.make_train_step(exp)
  # The model computes in bfloat16 (a float32 config's step has none).
  assert 'bf16' in step.lower(state, batch).as_text()
  fp32 = neural_experiment.build_experiment(_tiny(data_dir))
  assert 'bf16' not in train.make_train_step(fp32).lower(state, batch).as_text()
  state, m = step(state, batch)
  assert np.isfinite(float(m['loss'])) and not bool(m['nonfinite'])


def test_augmentation_changes_the_step_but_not_evaluation(data_dir):
  base = _tiny(data_dir)
  aug = _tiny(data_dir)
  aug.augment.waveform.update(noise_snr_db=10.0, gain_db=(-6.0, 6.0))
  aug.augment.features.update(time_masks=2, time_mask_max_frames=10, freq_masks=1,
                              freq_mask_max_bins=8)
  losses, probs = {}, {}
  for name, config in (('base', base), ('aug', aug)):
    exp = neural_experiment.build_experiment(config)
    state = neural_experiment.create_train_state(exp, jax.random.key(0))
    state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
    batch = sharding.shard_batch(
        next(input_pipeline.eval_batches(exp.segments['validation'], 8)), exp.mesh)
    probs[name] = np.asarray(neural_experiment.make_eval_step(exp)(state, batch))
    _, m = train.make_train_step(exp)(state, batch)
    losses[name] = float(m['loss'])
  assert losses['aug'] != losses['base']           # training sees augmented input
  np.testing.assert_array_equal(probs['aug'], probs['base'])  # evaluation never does


def test_offline_augmentation_multiplies_the_training_split(data_dir):
  config = _tiny(data_dir)
  plain = neural_experiment.build_experiment(config)
  config.augment.offline.update(enabled=True, noise_amplitude=0.035, stretch_rate=0.8,
                                pitch_steps=0.7)
  exp = neural_experiment.build_experiment(config)
  n = len(plain.segments['train'].utterances)
  assert len(exp.segments['train'].utterances) == 4 * n
  assert len(exp.segments['test'].utterances) == len(plain.segments['test'].utterances)
  assert any(p.endswith('#pitch') for p in exp.segments['train'].utterances.paths)


def test_offline_augmentation_before_the_split_leaks_only_under_an_utterance_split(data_dir):
  from configs import common
  from ser_jax import results as results_lib
  config = _tiny(data_dir)
  config.augment.offline.update(enabled=True, before_split=True, stretch_rate=None,
                                pitch_steps=None)             # noise only (cheap): ×2
  files = len(input_pipeline.load_corpus(config.data)[0])
  base = lambda p: str(p).split('#')[0]  # noqa: E731
  for protocol, leaks in (('stratified_kfold', True), ('loso', False)):
    config.protocol = common.protocol(protocol, k=3)
    exp = neural_experiment.build_experiment(config)
    paths = {n: seg.utterances.paths for n, seg in exp.segments.items()}
    assert sum(map(len, paths.values())) == 2 * files         # every file and its variant
    assert {str(p).split('#')[1] for p in paths['test']} == {'original', 'noise'}
    shared = {base(p) for p in paths['test']} & {base(p) for p in paths['train']}
    assert bool(shared) == leaks
  # A protocol loads the augmented corpus once; splitting it does not augment again.
  corpus = experiment.load_corpus(config)
  assert len(corpus[0]) == 2 * files
  assert sum(map(len, experiment.load_split(config, corpus)[0].values())) == 2 * files
  cfg = {'protocol': {'name': 'stratified_kfold', 'folds': 'all'},
         'augment': {'offline': {'enabled': True, 'before_split': True}}}
  assert 'augmented before the split (leaky' in results_lib._protocol(cfg)
  assert 'audio at' not in results_lib._protocol(cfg)
  cfg['features'] = {'sample_rate': 22_050}     # a corpus built with --config=22k
  assert results_lib._protocol(cfg).endswith('; audio at 22,050 Hz')
  cfg['svm'] = {'scaler': 'standard', 'gamma': 'scale'}   # the defaults: unmarked
  assert results_lib._protocol(cfg).endswith('; audio at 22,050 Hz')
  cfg['svm'] = {'scaler': 'none', 'gamma': 'auto'}
  assert results_lib._protocol(cfg).endswith('; SVM on unscaled statistics; gamma=auto')


def test_offline_augmentation_in_worker_processes_equals_one_process(monkeypatch):
  import joblib  # pylint: disable=g-import-not-at-top
  pools = []

  class Recording(joblib.Parallel):
    def __init__(self, *args, **kwargs):
      pools.append(kwargs.get('n_jobs'))
      super().__init__(*args, **kwargs)

  monkeypatch.setattr(joblib, 'Parallel', Recording)
  monkeypatch.setattr(input_pipeline, '_MIN_PARALLEL_AUGMENT', 4)
  rng = np.random.default_rng(0)
  n = 6
  waves = [(rng.normal(size=3200) * 3000).astype(np.int16) for _ in range(n)]
  utts = input_pipeline.Utterances(waves, np.zeros(n, np.int32), np.zeros(n, np.int32),
                                   np.array(['s'] * n), np.array([f'f{i}' for i in range(n)]))
  cfg = dict(noise_amplitude=0.035, stretch_rate=0.8, pitch_steps=None)
  one = input_pipeline.augment_offline(utts, cfg, 5, 16000, num_workers=1)
  assert pools == []                       # one process
  two = input_pipeline.augment_offline(utts, cfg, 5, 16000, num_workers=2)
  assert pools == [2]                      # two worker processes
  assert len(one.audio) == 3 * n and list(one.paths) == list(two.paths)
  for a, b in zip(one.audio, two.audio):
    np.testing.assert_array_equal(a, b)


def test_default_augment_block_is_off(data_dir):
  """The configs' augment block (configs/common.py) changes nothing until a field is
  set: the training step's features equal the unaugmented ones, and the split is not
  multiplied until `offline.enabled`."""
  config = _tiny(data_dir)
  assert not config.augment.offline.enabled
  exp = neural_experiment.build_experiment(config)
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
  batch = sharding.shard_batch(
      next(input_pipeline.train_batches(exp.segments['train'], 8, 0)), exp.mesh)
  rng = jax.random.key(3)
  augmented, _ = jax.jit(lambda b: train._features(exp, b, state.norm, rng))(batch)
  plain, _ = jax.jit(lambda b: train._features(exp, b, state.norm))(batch)
  np.testing.assert_array_equal(np.asarray(augmented), np.asarray(plain))
  n = len(exp.segments['train'].utterances)
  config.augment.offline.enabled = True  # the overridable switch turns it on
  assert len(neural_experiment.build_experiment(config).segments['train'].utterances) == 4 * n


def test_cached_features_give_the_same_steps_as_audio(data_dir):
  exp = neural_experiment.build_experiment(_tiny(data_dir))
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
  audio_seg = exp.segments['train']
  cached_seg = train.cache_features(exp, audio_seg)
  assert cached_seg.feats.shape[0] == len(audio_seg) and cached_seg.mask.shape[0] == len(audio_seg)
  step, eval_step = train.make_train_step(exp), neural_experiment.make_eval_step(exp)
  a_batch = next(input_pipeline.train_batches(audio_seg, 8, 3))
  c_batch = next(input_pipeline.train_batches(cached_seg, 8, 3))
  assert 'audio' in a_batch and 'feats' in c_batch and 'audio' not in c_batch
  # Normalisation statistics read from the cache equal those of the front end.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               jax.device_get(train.compute_norm_stats(exp, cached_seg)),
               jax.device_get(state.norm))
  np.testing.assert_array_equal(a_batch['labels'], c_batch['labels'])
  a_probs = np.asarray(eval_step(state, sharding.shard_batch(a_batch, exp.mesh)))
  c_probs = np.asarray(eval_step(state, sharding.shard_batch(c_batch, exp.mesh)))
  np.testing.assert_allclose(c_probs, a_probs, rtol=1e-5, atol=1e-6)
  params = {}
  for name, batch in (('audio', a_batch), ('cached', c_batch)):
    new, m = step(jax.tree.map(jax.numpy.copy, state), sharding.shard_batch(batch, exp.mesh))
    params[name] = jax.device_get(new.params)
    assert np.isfinite(float(m['loss']))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               params['cached'], params['audio'])


def test_feature_cache_is_off_when_waveform_augmentation_needs_audio(data_dir):
  config = _tiny(data_dir)
  assert config.feature_cache and train.feature_cache_enabled(config)
  config.augment.waveform.noise_snr_db = 10.0
  assert not train.feature_cache_enabled(config)
  config.augment.waveform.noise_snr_db = None
  config.augment.features.time_masks = 2           # SpecAugment works on cached features
  assert train.feature_cache_enabled(config)
  config.feature_cache = False
  assert not train.feature_cache_enabled(config)
  # A cached batch with waveform augmentation on is refused, not silently unaugmented.
  config.feature_cache, config.augment.waveform.noise_snr_db = True, 10.0
  exp = neural_experiment.build_experiment(config)
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  batch = next(input_pipeline.train_batches(train.cache_features(exp, exp.segments['train']), 8, 0))
  with pytest.raises(ValueError, match='waveform augmentation'):
    train.make_train_step(exp)(state, sharding.shard_batch(batch, exp.mesh))


def test_feature_cache_over_its_memory_limit_is_skipped(data_dir, monkeypatch):
  exp = neural_experiment.build_experiment(_tiny(data_dir))
  monkeypatch.setattr(train, 'FEATURE_CACHE_MAX_BYTES', 1000)
  seg = train.cache_features(exp, exp.segments['train'])
  assert seg is exp.segments['train'] and seg.feats is None


def test_speaker_norm_zscores_each_speaker_with_its_own_statistics(data_dir, tmp_path):
  config = _tiny(data_dir, speaker_norm=True)
  exp = neural_experiment.build_experiment(config)
  for name, seg in exp.segments.items():   # every split, test speakers included
    assert seg.norm_stats is not None and seg.norm_stats.shape[0] == len(seg)
    speakers = seg.utterances.speakers[seg.utterance]
    feats, masks = _normalised_frames(exp, seg)
    # A speaker's frames over all splits have mean 0 and std 1; each split holds
    # all of a speaker's audio here (speaker-independent folds).
    for spk in np.unique(speakers):
      frames = feats[speakers == spk][masks[speakers == spk]]
      np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=2e-3)
      np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=2e-2)
  # Training runs on it; prediction, which takes files rather than speakers, refuses.
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
  batch = sharding.shard_batch(next(input_pipeline.train_batches(exp.segments['train'], 8, 0)),
                               exp.mesh)
  _, m = train.make_train_step(exp)(state, batch)
  assert np.isfinite(float(m['loss']))


def test_speaker_norm_predictions_equal_evaluation_for_a_whole_speaker(data_dir, tmp_path):
  """predict takes the files of a call as one speaker's: given all of a test speaker's
  recordings, it normalises exactly as evaluation did and gives its posteriors."""
  config = _tiny(data_dir, speaker_norm=True, num_epochs=1)
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  exp = neural_experiment.build_experiment(config)
  utts = exp.segments['test'].utterances
  speaker = sorted(set(utts.speakers))[0]
  pick = np.flatnonzero(utts.speakers == speaker)
  gender = ('female', 'male')[int(utts.genders[pick[0]])]
  predictor = neural_experiment.load_predictor(config, workdir, None, gender)
  predictor.observe([utts.audio[i] for i in pick])
  answers = predictor.many([utts.audio[i] for i in pick])
  expected = {r['path']: r['probabilities'] for r in results['test']['predictions']}
  for i, (probs, _) in zip(pick, answers):
    want = np.asarray(expected[str(utts.paths[i])])
    np.testing.assert_allclose(probs, want / want.sum(), atol=2e-5)   # predict renormalises
  paths = []
  for k, i in enumerate(pick):   # the same recordings as files: one call, one speaker
    paths.append(str(tmp_path / f'{k}.wav'))
    soundfile.write(paths[-1], utts.audio[i], 16000, subtype='PCM_16')
  out = list(predict.predict_files(config, workdir, paths, gender))
  assert [r['path'] for r in out] == paths
  assert all(any('taken as one speaker' in w for w in r['warnings']) for r in out)
  for r, (probs, _) in zip(out, answers):   # the files decode to the corpus's int16 exactly
    np.testing.assert_allclose(list(r['probabilities'].values()), probs, atol=1e-5)
  with pytest.raises(trainers.ModeNotAvailable, match='speaker_norm'):
    from ser_jax import export  # pylint: disable=g-import-not-at-top
    export.export_saved_model(config, workdir, str(tmp_path / 'export'))


def _normalised_frames(exp, seg):
  """seg's features after its own statistics (before the training statistics), valid
  frames only: [S, T, F, C] and the mask [S, T]."""
  frontend = jax.jit(lambda b: neural_experiment.frontend_output(exp, b))
  feats, masks = [], []
  for batch in input_pipeline.eval_batches(seg, exp.config.batch_size):
    f, m = jax.device_get(frontend(sharding.shard_batch(batch, exp.mesh)))
    keep = batch['weight'] > 0
    feats.append(f[keep])
    masks.append(m[keep])
  return np.concatenate(feats), np.concatenate(masks)


def test_utterance_norm_zscores_each_file_and_predict_and_export_agree(data_dir, tmp_path):
  """utterance_norm (inductive): every utterance's frames, over all its segments, have
  mean 0 and std 1; predict (file by file) and the SavedModel (which computes the
  statistics in its graph) give evaluation's posteriors. With the last segment at
  the file's end (`features.last_segment_at_end`) in all three."""
  with pytest.raises(ValueError, match='alternatives'):
    neural_experiment.build_experiment(_tiny(data_dir, speaker_norm=True, utterance_norm=True),
                                       with_data=False)
  config = _tiny(data_dir, utterance_norm=True, num_epochs=1)
  config.features.segment_hop_seconds = 0.5     # several overlapping segments a file
  config.features.last_segment_at_end = True
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  exp = neural_experiment.build_experiment(config)
  seg = exp.segments['test']
  assert seg.norm_stats is not None and np.bincount(seg.utterance).max() > 1
  n = neural_experiment.segment_samples(config)
  long_file = np.asarray([len(a) >= n for a in seg.utterances.audio])[seg.utterance]
  assert (seg.lengths[long_file] == n).all()   # no short tail in a file of one segment or more
  assert any(len(a) > n and (len(a) - n) % (n // 2) for a in seg.utterances.audio)   # it moved
  feats, masks = _normalised_frames(exp, seg)
  for u in np.unique(seg.utterance):
    frames = feats[seg.utterance == u][masks[seg.utterance == u]]
    np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=2e-3)
    np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=2e-2)
  utts = seg.utterances
  expected = {r['path']: np.asarray(r['probabilities']) for r in results['test']['predictions']}
  from ser_jax import export  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  export.export_saved_model(config, workdir, str(tmp_path / 'export'))
  serve = tf.saved_model.load(str(tmp_path / 'export')).signatures['serving_default']
  pick = np.flatnonzero(utts.genders == utts.genders[0])[:3]   # one predictor, one call:
  predictor = neural_experiment.load_predictor(   # files in shared batches, each by itself
      config, workdir, None, ('female', 'male')[int(utts.genders[0])])
  for i, (probs, _) in zip(pick, predictor.many([utts.audio[i] for i in pick])):
    want = expected[str(utts.paths[i])]
    want = want / want.sum()   # predict and export renormalise
    np.testing.assert_allclose(probs, want, atol=2e-5)
    out = serve(waveform=tf.constant(utts.audio[i].astype(np.float32) / 32768.0),
                gender=tf.constant(int(utts.genders[i])))
    np.testing.assert_allclose(out['probabilities'].numpy(), want, atol=2e-4)
  with open(tmp_path / 'export' / 'ser_jax_export.json') as f:
    assert json.load(f)['last_segment_at_end'] is True


def test_class_weights_even_out_the_classes():
  seg = mock.Mock(labels=np.array([0, 0, 0, 1, 2, 2]))
  config = _tiny('unused', class_balance=True)
  w = train.class_weights(config, seg, 4)
  np.testing.assert_allclose(w, [6 / 9, 2.0, 1.0, 0.0])   # N / (K n_c); class 3 absent
  assert w[seg.labels].mean() == pytest.approx(1.0)
  assert train.class_weights(_tiny('unused'), seg, 4) is None


def test_class_balance_and_mixup_in_the_step(data_dir):
  """Uniform class weights change nothing; other weights and mixup change the loss;
  with both, 2 micro-batches give the full batch's step (the bookkeeping is exact)."""
  exps = {k: neural_experiment.build_experiment(_tiny(data_dir, grad_accum_steps=k))
          for k in (1, 2)}          # the data once per k; mixup is only the step's config
  # The initial state once per k (each step donates a copy of it).
  states = {k: neural_experiment.create_train_state(exp, jax.random.key(0)).replace(
      norm=train.compute_norm_stats(exp, exp.segments['train'])) for k, exp in exps.items()}

  def first_loss(k, loss_weights=None, mixup_alpha=0.0):
    exp = exps[k]
    config = exp.config.copy_and_resolve_references()
    config.mixup_alpha = mixup_alpha
    exp = dataclasses.replace(exp, config=config)
    state = jax.tree.map(jnp.copy, states[k])
    batch = next(input_pipeline.train_batches(exp.segments['train'], 8, 0))
    _, m = train.make_train_step(exp, loss_weights)(state, sharding.shard_batch(batch, exp.mesh))
    return float(m['loss'])
  plain = first_loss(1)
  assert first_loss(1, np.ones(8, np.float32)) == plain
  w = np.linspace(0.2, 1.8, 8).astype(np.float32)
  weighted = {k: first_loss(k, w) for k in (1, 2)}
  mixed = {k: first_loss(k, w, mixup_alpha=0.4) for k in (1, 2)}
  assert weighted[1] != plain and mixed[1] != weighted[1]
  for losses in (weighted, mixed):
    assert np.isfinite(losses[1]) and losses[2] == pytest.approx(losses[1], rel=1e-5)


def test_speaker_norm_ignores_offline_augmented_copies(data_dir):
  plain = neural_experiment.build_experiment(_tiny(data_dir, speaker_norm=True))
  config = _tiny(data_dir, speaker_norm=True)
  config.augment.offline.update(enabled=True, stretch_rate=None, pitch_steps=None)  # noise
  augmented = neural_experiment.build_experiment(config)
  seg = augmented.segments['train']
  originals = np.char.endswith(seg.utterances.paths[seg.utterance].astype(str), '#original')
  assert 0 < originals.sum() < len(seg)
  np.testing.assert_allclose(seg.norm_stats[originals],
                             plain.segments['train'].norm_stats, rtol=1e-5, atol=1e-6)


def test_speaker_norm_keeps_speed_perturbed_copies_apart(data_dir):
  """A speed copy is a new voice: its segments are z-scored with the statistics of
  that speaker's copies at that rate, not the speaker's own (which the originals
  and the voice-keeping noise copies still get)."""
  plain = neural_experiment.build_experiment(_tiny(data_dir, speaker_norm=True))
  config = _tiny(data_dir, speaker_norm=True)
  config.augment.offline.update(enabled=True, stretch_rate=None, pitch_steps=None,
                                speed_rates=(0.8,))      # original, noise, speed0.8
  exp = neural_experiment.build_experiment(config)
  seg = exp.segments['train']
  paths = seg.utterances.paths[seg.utterance].astype(str)
  speakers = seg.utterances.speakers[seg.utterance]
  kept = np.char.endswith(paths, '#original')
  np.testing.assert_allclose(seg.norm_stats[kept], plain.segments['train'].norm_stats,
                             rtol=1e-5, atol=1e-6)
  noise = np.char.endswith(paths, '#noise')
  speed = np.char.endswith(paths, '#speed0.8')
  assert noise.any() and speed.any()
  n, s1, s2 = neural_experiment.segment_moments(exp)(seg)
  for spk in np.unique(speakers):
    own, noisy = kept & (speakers == spk), noise & (speakers == spk)
    np.testing.assert_allclose(seg.norm_stats[noisy],
                               seg.norm_stats[own][:1].repeat(noisy.sum(), 0), rtol=1e-6)
    copies = speed & (speakers == spk)
    expected = neural_experiment.moment_stats(n[copies].sum(), s1[copies].sum(0),
                                              s2[copies].sum(0))
    np.testing.assert_allclose(seg.norm_stats[copies],
                               np.broadcast_to(expected, seg.norm_stats[copies].shape),
                               rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected, seg.norm_stats[own][0], rtol=1e-3)


def test_ema_follows_the_parameters_and_is_what_evaluation_uses(data_dir, tmp_path):
  """ema_decay: the state's average obeys ema ← r·ema + (1 − r)·params with
  r = min(d, (1 + t) / (w + t)), w = ema_warmup; the eval step applies it, not the
  raw params; a run's checkpoints keep it and its results are the average's."""
  decay, warmup = 0.8, 4.0   # r = 0.25, 0.4, 0.5, 0.57: the warm-up's, not the default's
  exp = neural_experiment.build_experiment(_tiny(data_dir, ema_decay=decay, ema_warmup=warmup))
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
  _assert_trees_equal(state.ema, state.params)
  expected = jax.device_get(state.params)
  step = train.make_train_step(exp)
  batches = input_pipeline.train_batches(exp.segments['train'], 8, 0)
  for t in range(4):
    state, _ = step(state, sharding.shard_batch(next(batches), exp.mesh))
    r = min(decay, (1 + t) / (warmup + t))
    expected = jax.tree.map(lambda e, p: r * e + (1 - r) * p, expected,
                            jax.device_get(state.params))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               jax.device_get(state.ema), expected)
  batch = sharding.shard_batch(next(batches), exp.mesh)
  probs = np.asarray(neural_experiment.make_eval_step(exp)(state, batch))
  raw = np.asarray(neural_experiment.make_eval_step(exp)(state.replace(ema=None), batch))
  feats, mask = neural_experiment.frontend_output(exp, batch)
  feats = features.normalize(feats, state.norm, mask)
  want = jax.nn.softmax(exp.model.apply({'params': state.ema}, feats, mask, batch['gender']))
  np.testing.assert_allclose(probs, np.asarray(want), atol=1e-6)
  assert np.abs(probs - raw).max() > 1e-4

  config = _tiny(data_dir, ema_decay=decay, num_epochs=2)
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  ckpt, _ = neural_experiment.resolve_checkpoint(workdir, None, config.selection)
  restored, best = neural_experiment.restore_for_eval(exp, ckpt)
  assert best == results['checkpoint_step'] and restored.ema is not None
  again = neural_experiment.evaluate_splits(exp, restored, ('test',))['test']
  assert again['uar'] == results['test']['uar'] and again['wa'] == results['test']['wa']
  with pytest.raises(ValueError, match='ema_warmup=1.0 must be above 1'):
    train.make_train_step(
        neural_experiment.build_experiment(_tiny(data_dir, ema_decay=decay, ema_warmup=1.0)))
