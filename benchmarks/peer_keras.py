"""The Keras peer of `benchmarks/train_step.py --model=cnn2d_bilstm --inputs=features`:
Sen et al.'s 2-D CNN + BiLSTM written in Keras 3 (TensorFlow backend, as the
paper's notebook), trained on the same batch shape from precomputed MFCC, so
ser_jax's figure and the peer's can be taken side by side on the machine at hand.

  python benchmarks/peer_keras.py --steps=30
  python benchmarks/train_step.py --model=cnn2d_bilstm --inputs=features

The network is the one `ser_jax/models/cnn2d_bilstm.py` documents, layer for
layer (the script checks that both have 709,128 parameters at 130×40 and 8
classes); Adam 1e-3, sparse categorical cross-entropy, `train_on_batch` on
random MFCC-shaped inputs (speed does not depend on the values), Keras'
defaults otherwise (its graph mode; `--jit_compile` asks for XLA). The
examples/s is the batch over the median step time of `--steps` timed steps
after `--warmup`; one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PARAMS = 709_128   # ser_jax's cnn2d_bilstm at (130, 40, 1) and 8 classes (README)


def build(frames: int, bands: int, classes: int):
  import keras  # pylint: disable=g-import-not-at-top
  from keras import layers  # pylint: disable=g-import-not-at-top
  inp = keras.Input((frames, bands, 1))
  x = layers.Conv2D(32, 3, activation='relu')(inp)
  x = layers.MaxPooling2D(2)(x)
  x = layers.Conv2D(64, 3, activation='relu')(x)
  x = layers.MaxPooling2D(2)(x)
  x = layers.Dropout(0.3)(x)
  x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]))(x)
  x = layers.Bidirectional(layers.LSTM(128))(x)
  x = layers.Dense(128, activation='relu')(x)
  out = layers.Dense(classes)(x)
  return keras.Model(inp, out)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--batch_size', type=int, default=32)
  p.add_argument('--frames', type=int, default=130)
  p.add_argument('--bands', type=int, default=40)
  p.add_argument('--classes', type=int, default=8)
  p.add_argument('--steps', type=int, default=30)
  p.add_argument('--warmup', type=int, default=5)
  p.add_argument('--jit_compile', action='store_true')
  args = p.parse_args(argv)
  if min(args.batch_size, args.frames, args.bands, args.classes, args.steps) < 1:
    p.error('sizes and --steps must be positive')
  os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from ser_jax import workdir  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = build(args.frames, args.bands, args.classes)
  model.compile(optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=args.jit_compile)
  n_params = model.count_params()
  if (args.frames, args.bands, args.classes) == (130, 40, 8) and n_params != PARAMS:
    print(f'the Keras network has {n_params:,} parameters, ser_jax\'s {PARAMS:,}: '
          'not the same architecture', file=sys.stderr)
    return 1
  rng = np.random.default_rng(0)
  x = rng.standard_normal((args.batch_size, args.frames, args.bands, 1)).astype(np.float32)
  y = rng.integers(0, args.classes, args.batch_size)
  start = time.perf_counter()
  loss = model.train_on_batch(x, y)
  compile_s = time.perf_counter() - start
  for _ in range(args.warmup):
    model.train_on_batch(x, y)
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    loss = model.train_on_batch(x, y)
    times.append(time.perf_counter() - start)
  step_s = float(np.median(times))
  print(json.dumps({
      'peer': f'keras {keras.__version__} (tensorflow {tf.__version__})',
      'model': 'cnn2d_bilstm', 'inputs': 'features', 'batch_size': args.batch_size,
      'params': n_params, 'jit_compile': args.jit_compile,
      'cpu': workdir.cpu_model(), 'cores': os.cpu_count(),
      'compile_s': round(compile_s, 2), 'step_s': round(step_s, 4),
      'step_s_min': round(min(times), 4),
      'examples_per_s': round(args.batch_size / step_s, 2),
      'loss_finite': bool(np.isfinite(float(np.asarray(loss).ravel()[0]))),
  }))
  return 0


if __name__ == '__main__':
  sys.exit(main())
