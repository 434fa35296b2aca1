"""Export a trained model, with its front end and normalisation, as a TF SavedModel.

The artifact needs TensorFlow only (no ser_jax, no JAX): the jitted JAX
function (waveform segments → log-Mel features → z-scoring with the training
statistics → model → softmax) is converted with `jax2tf`, and segmentation and
utterance aggregation are written in TensorFlow around it.

Signatures:
  serving_default(waveform: float32[n] at 16 kHz in [-1, 1], gender: int32 scalar,
                  0 female, 1 male, -1 unknown → both averaged)
      → {'probabilities': float32[K], 'emotion_index': int32, 'segments': int32}
  segments(audio: float32[b, L], lengths: int32[b], gender: int32[b])
      → {'probabilities': float32[b, K]}   (posteriors of fixed-length segments; for
      a model trained with utterance_norm the b segments are one utterance's, whose
      statistics normalise them)
Class names, sample rate and segment length are in `ser_jax_export.json`
and as the module's `class_names` constant.
"""
from __future__ import annotations

import json
import os

import jax
from jax.experimental import jax2tf
import tensorflow as tf

from ser_jax import cli
from ser_jax import features as features_lib
from ser_jax import neural_experiment as neural_lib


def export_saved_model(config, workdir: str | None, out_dir: str,
                       checkpoint: str | None = None) -> dict:
  """Writes the SavedModel of a checkpoint (default: the best) to `out_dir`."""
  neural_lib.check_no_speaker_norm(config, 'export')
  aggregation = config.aggregation
  # The graph below writes evaluate.aggregate's methods in TF: any other is refused.
  if aggregation not in ('max', 'mean'):
    raise cli.UsageError(f'aggregation={aggregation!r}: the export writes max and mean only')
  exp = neural_lib.build_experiment(config, with_data=False)
  ckpt, step = neural_lib.resolve_checkpoint(workdir, checkpoint, config.selection)
  state, step = neural_lib.restore_for_eval(exp, ckpt, step)
  params = jax.device_get(neural_lib.inference_params(state))
  norm = jax.device_get(state.norm)
  sr = int(config.features.sample_rate)
  seg_len, hop, max_segments, last_at_end = neural_lib.segmentation(config)
  classes = list(exp.class_names)

  def segment_probs(p, audio, lengths, gender):
    feats, mask = exp.frontend(audio, lengths)
    if config.utterance_norm:   # the batch is one utterance's segments (as in training)
      feats = features_lib.normalize(feats, features_lib.finalize_stats(
          features_lib.accumulate_stats(feats, mask), neural_lib.NORM_MIN_STD), mask)
    feats = features_lib.normalize(feats, norm, mask)
    logits = exp.model.apply({'params': p}, feats, mask, gender)
    return jax.nn.softmax(logits, axis=-1)

  converted = jax2tf.convert(segment_probs, with_gradient=False,
                             polymorphic_shapes=[None, f'(b, {seg_len})', '(b,)', '(b,)'])
  module = tf.Module()
  module.params = tf.nest.map_structure(tf.Variable, params)
  module.class_names = tf.Variable(classes, trainable=False, name='class_names')

  # autograph=False: these are plain TF ops around the converted JAX function,
  # which AutoGraph would try (and fail, with a warning each) to rewrite.
  @tf.function(input_signature=[tf.TensorSpec([None, seg_len], tf.float32),
                                tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)],
               autograph=False)
  def segments(audio, lengths, gender):
    return {'probabilities': converted(module.params, audio, lengths, gender)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)],
               autograph=False)
  def utterance(waveform, gender):
    n = tf.shape(waveform)[0]
    check = tf.debugging.assert_positive(
        n, message='ser_jax export: the waveform is empty (0 samples); pass mono float32 '
        f'audio at {sr} Hz')
    with tf.control_dependencies([check]):
      n = tf.identity(n)
    count = 1 + tf.maximum(0, (n - seg_len + hop - 1) // hop)
    if max_segments > 0:
      count = tf.minimum(count, max_segments)
    starts = tf.range(count) * hop   # input_pipeline.segment_starts
    if last_at_end:
      starts = tf.minimum(starts, tf.maximum(n - seg_len, 0))
    padded = tf.pad(waveform, [[0, seg_len + hop]])   # every index in range, any hop
    audio = tf.gather(padded, starts[:, None] + tf.range(seg_len)[None, :])
    lengths = tf.clip_by_value(n - starts, 0, seg_len)

    def pooled_for(g):  # utterance posteriors for one gender input, as in evaluation
      probs = converted(module.params, audio, lengths, tf.fill([count], g))
      return tf.reduce_max(probs, 0) if aggregation == 'max' else tf.reduce_mean(probs, 0)

    pooled = tf.cond(gender < 0, lambda: 0.5 * (pooled_for(0) + pooled_for(1)),
                     lambda: pooled_for(gender))
    pooled = pooled / tf.reduce_sum(pooled)
    return {'probabilities': pooled, 'emotion_index': tf.argmax(pooled, output_type=tf.int32),
            'segments': count}

  os.makedirs(out_dir, exist_ok=True)
  tf.saved_model.save(module, out_dir,
                      signatures={'serving_default': utterance, 'segments': segments})
  info = {'classes': classes, 'sample_rate': sr, 'segment_samples': seg_len,
          'hop_samples': hop, 'last_segment_at_end': last_at_end, 'aggregation': aggregation,
          'checkpoint_step': int(step),
          'model': config.model.name, 'features': config.features.name,
          'input': 'mono float32 waveform in [-1, 1] at sample_rate; gender 0 female, '
                   '1 male, -1 unknown'}
  with open(os.path.join(out_dir, 'ser_jax_export.json'), 'w') as f:
    json.dump(info, f, indent=1)
  return info

