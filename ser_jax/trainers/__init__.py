"""Trainer registry: `config.trainer` → what that kind of system can do.

Each entry names, as 'module:function' imported on first use (so predicting
with an SVM never loads Flax, and predicting with a network never loads the
training loop), the functions behind every mode of run.py:

  train(config, workdir, mesh=None, corpus=None) -> results
      one run; results is the dict of `experiment.finish_run` ('validation',
      'test', 'speakers', 'checkpoint_step', ...), so protocols, reports and
      run.py treat all systems alike;
  evaluate(config, workdir, checkpoint, splits, outdir) -> results   (--mode=evaluate)
  predictor(config, workdir, checkpoint, gender) -> experiment.Predictor (--mode=predict)
  export(config, workdir, out_dir, checkpoint) -> info              (--mode=export)

A mode a trainer does not offer is None, with the reason in `unavailable`.
Each entry also declares the config fields whose setting makes a run
transductive (test speakers' own audio used before testing, e.g. per-speaker
normalisation) or leaky (variants of test files trained on); `labels(config)`
reads them for the reports, protocols and `ser_jax.results`.
Adding a trainer: a module under ser_jax/trainers/ and one entry here.
"""
from __future__ import annotations

import dataclasses
import importlib

from ser_jax import cli
from ser_jax.cli import ModeNotAvailable  # noqa: F401  (raised here and by trainers)


# The config fields every trainer reads (defaults live in the configs:
# configs/common.py and each system's file, never in the library).
_SHARED_FIELDS = (
    'trainer', 'seed', 'seeds', 'reference', 'aggregation', 'selection.metric',
    'selection.mode',
    'data.name', 'data.classes', 'data.builder_config', 'data.data_dir', 'data.split',
    'data.exclude_labels', 'data.where', 'protocol.name', 'protocol.fold', 'protocol.folds',
    'protocol.k', 'protocol.val_fraction', 'protocol.fractions', 'protocol.split_seed',
    'protocol.train', 'protocol.test', 'protocol.test_speakers',
    'protocol.validation_speakers',
    'features.name', 'features.sample_rate', 'model.name')


@dataclasses.dataclass(frozen=True)
class Trainer:
  name: str
  train: str
  predictor: str
  evaluate: str | None = None
  export: str | None = None
  unavailable: str = ''    # why a mode is None
  fields: tuple = ()       # the config fields it reads besides _SHARED_FIELDS
  # Config fields that, all set (truthy), make a run transductive / leaky: one
  # tuple of fields per way of being so.
  transductive: tuple = ()
  leaky: tuple = ()
  # 'module:function(config)': UsageError for values this trainer cannot use,
  # before anything is read or written (check_values).
  check: str | None = None

  def check_config(self, config):
    """Raises ConfigFieldMissing naming the first field this trainer reads that
    `config` lacks (so a config missing one fails before any work, with its name)."""
    for path in _SHARED_FIELDS + self.fields:
      node = config
      for i, key in enumerate(path.split('.')):
        if not hasattr(node, 'keys') or key not in node.keys():
          where = '.'.join(path.split('.')[:i]) or 'the config'
          raise ConfigFieldMissing(
              f'config field {path!r} is missing ({where} has no {key!r}); the {self.name} '
              'trainer reads it: set it in the config file (configs/common.py holds the '
              'shared defaults)')
        node = node[key]

  def function(self, mode: str):
    """The function behind `mode` ('train', 'evaluate', 'predictor', 'export')."""
    spec = getattr(self, mode)
    if spec is None:
      raise ModeNotAvailable(f'--mode={mode} is not available for the {self.name} trainer'
                             + (f': {self.unavailable}' if self.unavailable else ''))
    module, fn = spec.split(':')
    return getattr(importlib.import_module(module), fn)


class ConfigFieldMissing(KeyError):
  """A field the trainer reads is not in the config."""

  def __str__(self):
    return self.args[0]


_TRAINERS = {
    'neural': Trainer(   # Flax models (ser_jax/models)
        'neural', train='ser_jax.trainers.neural:train_and_evaluate',
        evaluate='ser_jax.neural_experiment:evaluate_to_folder',
        predictor='ser_jax.neural_experiment:load_predictor',
        export='ser_jax.export:export_saved_model',
        check='ser_jax.trainers.neural:check_config',
        transductive=(('speaker_norm',),),
        leaky=(('augment.offline.enabled', 'augment.offline.before_split'),),
        fields=('optimizer', 'learning_rate', 'grad_clip_norm', 'batch_size',
                'grad_accum_steps', 'num_epochs', 'eval_every_epochs', 'early_stopping',
                'log_every_steps', 'checkpoint_keep', 'checkpoint_every_steps',
                'feature_cache', 'speaker_norm', 'utterance_norm', 'class_balance',
                'mixup_alpha', 'ema_decay', 'ema_warmup',
                'augment.waveform', 'augment.features',
                'augment.offline.enabled', 'augment.offline.before_split',
                'features.segment_seconds',
                'features.segment_hop_seconds', 'features.max_segments',
                'features.last_segment_at_end', 'model.use_gender')),
    'svm': Trainer(      # scikit-learn on utterance statistics
        'svm', train='ser_jax.trainers.svm:train_and_evaluate',
        predictor='ser_jax.trainers.svm:load_predictor',
        unavailable='training writes results.json (validation and test) and '
                    'svm_model.joblib; --mode=predict --wav=... uses that model',
        check='ser_jax.trainers.svm:check_config',
        transductive=(('svm.speaker_norm',),),
        leaky=(('svm.augment', 'svm.augment_before_split'),),
        fields=tuple(f'svm.{k}' for k in (
            'C', 'kernel', 'gamma', 'c_grid', 'probability', 'class_weight',
            'refit_on_validation', 'augment', 'augmentation', 'cache_dir', 'num_workers',
            'cache_size_mb', 'speaker_norm', 'augment_before_split', 'scaler'))),
}


def _named(name) -> Trainer:
  if name not in _TRAINERS:
    raise cli.UsageError(f'unknown trainer {name!r}; known: {sorted(_TRAINERS)}')
  return _TRAINERS[name]


def get(config) -> Trainer:
  """The trainer `config.trainer` names, after checking the config has its fields."""
  if 'trainer' not in config:
    raise ConfigFieldMissing("config field 'trainer' is missing ('neural' or 'svm'; "
                             'configs/common.py sets it for the neural systems)')
  trainer = _named(config.trainer)
  trainer.check_config(config)
  return trainer


def check_values(config) -> None:
  """UsageError for a value no run can use, said before run.py reads or writes
  anything: the corpus names, the protocol (name, k, folds' syntax), the
  aggregation and selection mode here, then the trainer's own (`Trainer.check`).
  What depends on the corpus (a fold beyond its speakers, a class it lacks) is
  judged when the corpus is read."""
  from ser_jax import evaluate  # pylint: disable=g-import-not-at-top
  from ser_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  from ser_jax import splits  # pylint: disable=g-import-not-at-top
  input_pipeline.check_corpus_names(config.data)
  splits.check_protocol(config.protocol)
  splits.parse_folds(config.protocol.folds)
  if config.aggregation not in evaluate.AGGREGATIONS:
    raise cli.UsageError(f'aggregation={config.aggregation!r}: '
                         f'{" or ".join(evaluate.AGGREGATIONS)}')
  if config.selection.mode not in ('min', 'max'):
    raise cli.UsageError(f'selection.mode={config.selection.mode!r}: min or max')
  trainer = _named(config.trainer)
  if trainer.check:
    module, fn = trainer.check.split(':')
    getattr(importlib.import_module(module), fn)(config)


def _is_set(config, path: str) -> bool:
  node = config
  for key in path.split('.'):
    if not hasattr(node, 'get'):
      return False
    node = node.get(key)
  return bool(node)


def labels(config) -> dict:
  """{'transductive': bool, 'leaky': bool} of a run, from the fields its trainer
  declares. `config` is a ConfigDict or a config.json's dict; a field a config
  lacks counts as unset (a workdir from before the field), and so does a config
  without `trainer` (from before the registry: 'svm' if it has an svm block)."""
  trainer = _named(config.get('trainer') or ('svm' if config.get('svm') else 'neural'))
  return {label: any(all(_is_set(config, f) for f in group)
                     for group in getattr(trainer, label))
          for label in ('transductive', 'leaky')}
