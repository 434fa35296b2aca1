"""Pieces shared by the configs of the model zoo.

Every config's `get_config(arg)` builds its paper's setting, then (for the
arguments 'synthetic' and 'tiny') `use_synthetic` points it at the embedded
synthetic corpus with the same protocol for every system, so that their
numbers on it are comparable:
  synthetic  `ser_synthetic/demo` (10 speakers, 5 sessions, 8 emotions):
             leave-one-session-out fold 0 (test session 1, validate on 2);
  tiny       `ser_synthetic/tiny` (4 speakers, 8 emotions x 3 takes): leave-one-
             speaker-out fold 0, 2 epochs, batch 8, 1 s segments (tests).
Each config then narrows its own model for these two.
"""
import ml_collections
from ml_collections import config_dict

from ser_jax import augment as augment_lib

# RAVDESS order (SPEC section 3); SAVEE, TESS and CREMA-D have no 'calm'.
EIGHT_EMOTIONS = ('neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'disgust',
                  'surprised')
# The combined set of Ranjan et al. and Gomes et al.: 12,162 files.
COMBINED = ('ser_crema_d', 'ravdess', 'ser_savee', 'tess')


def data(name, classes=EIGHT_EMOTIONS) -> ml_collections.ConfigDict:
  """`config.data`: `name` is one TFDS dataset or a tuple of them (a union);
  on the command line also `--config.data.name=ravdess+tess`."""
  return ml_collections.ConfigDict(dict(
      name=config_dict.FieldReference(name, field_type=object),   # str or tuple
      builder_config='',
      data_dir=config_dict.placeholder(str),   # None: TFDS's default
      split='all',
      classes=tuple(classes),
      exclude_labels=(),
      where={},
  ))


def protocol(name: str, **fields) -> ml_collections.ConfigDict:
  """`config.protocol` (ser_jax/splits.py): every protocol's fields at their
  defaults, so `--config.protocol.name=group_kfold` on any config has what it
  reads. Speaker protocols: loso, loso_session (`fold`); utterance protocols:
  stratified_kfold / group_kfold (`k`, `val_fraction`), stratified_split /
  group_split (`fractions` train/validation/test), cross_corpus (`test` and
  `train` corpora; default: leave corpus `fold` out, train on the rest),
  holdout (`test_speakers`, `validation_speakers`).
  `folds`: '' one run (`fold`), 'all' or '0,2' a protocol of several runs."""
  defaults = dict(name=name, fold=0, folds='', k=5, val_fraction=0.1,
                  fractions=(0.8, 0.1, 0.1), split_seed=0, train=(), test=(),
                  test_speakers=(), validation_speakers=())
  unknown = set(fields) - set(defaults)
  if unknown:
    raise ValueError(f'protocol(): unknown fields {sorted(unknown)}')
  return ml_collections.ConfigDict({**defaults, **fields})


def model(name: str, **fields) -> ml_collections.ConfigDict:
  """`config.model`: the registry name, the model's own fields, and those every
  model shares (ser_jax/models/heads.py SERModel) at their defaults unless given."""
  shared = dict(use_gender=False, gender_embed_dim=300, gender_units=64,
                dtype='float32')   # compute dtype; 'bfloat16' for GPUs (no gain on CPU)
  return ml_collections.ConfigDict(dict(name=name, **{**shared, **fields}))


def augment() -> ml_collections.ConfigDict:
  """Augmentation fields (ser_jax/augment.py), all off; e.g.
  `--config.augment.waveform.noise_snr_db=20`, `--config.augment.features.time_masks=2`,
  `--config.augment.offline.enabled=True` (Gomes ×4, training split only; with
  `--config.augment.offline.before_split=True` every file, before the split: leaky)."""
  def fields(defaults):  # None (off) becomes an overridable placeholder
    return {k: config_dict.placeholder(object) if v is None else v for k, v in defaults.items()}

  # before_split=True: the whole corpus, before the split (leaky; experiment.load_split).
  offline = dict(enabled=False, before_split=False, **fields(augment_lib.OFFLINE_DEFAULTS))
  # A variant's parameter may be None on the command line, which drops that variant
  # (`--config.augment.offline.pitch_steps=None`): typed object, not float.
  offline.update({k: config_dict.FieldReference(offline[k], field_type=object)
                  for k in ('noise_amplitude', 'stretch_rate', 'pitch_steps')})
  return ml_collections.ConfigDict({
      'waveform': fields(augment_lib.WAVEFORM_DEFAULTS),
      'features': fields(augment_lib.FEATURE_DEFAULTS),
      'offline': offline,
  })


def base() -> ml_collections.ConfigDict:
  """Training fields every neural config sets (each overrides what its paper says)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.seeds = ()
  c.trainer = 'neural'
  c.optimizer = 'adam'
  c.learning_rate = 1e-3
  c.grad_clip_norm = 0.0          # 0: off
  c.batch_size = 32               # global, over all devices and hosts
  c.grad_accum_steps = 1
  c.num_epochs = 50
  c.eval_every_epochs = 1.0
  c.aggregation = 'mean'          # segment → utterance posteriors
  c.selection = ml_collections.ConfigDict(dict(metric='val_uar', mode='max'))
  c.early_stopping = ml_collections.ConfigDict(dict(
      metric='val_loss', mode='min', patience=0, min_delta=0.0))  # patience 0: off
  c.log_every_steps = 50
  c.checkpoint_keep = 2
  c.checkpoint_every_steps = 0
  c.augment = augment()
  # Compute the front end once per run for the training and validation
  # segments (skipped when waveform augmentation needs the audio each step).
  c.feature_cache = True
  # True: z-score every segment with its speaker's own feature statistics (over all
  # of that speaker's audio, test speakers included: transductive) before the
  # training statistics; predict takes a call's files as one speaker, export refuses.
  c.speaker_norm = False
  # True: z-score every segment with its utterance's own feature statistics (over all
  # of that file's segments; inductive) before the training statistics. One of the two.
  c.utterance_norm = False
  c.class_balance = False         # True: loss weights N / (K n_c) per training class
  c.mixup_alpha = 0.0             # > 0: mixup of features and labels, lam ~ Beta(a, a)
  c.ema_decay = 0.0               # > 0: evaluate/select/predict with an EMA of the params
  # The EMA's warm-up: r = min(ema_decay, (1 + t) / (ema_warmup + t)) at update t, so
  # until r reaches ema_decay the average spans about t / (ema_warmup - 1) updates
  # (10: TensorFlow's ExponentialMovingAverage; smaller: a longer horizon).
  c.ema_warmup = 10.0
  return c


def check_arg(arg: str, paper_names=('paper',)):
  known = tuple(paper_names) + ('synthetic', 'tiny')
  if arg not in known:
    raise ValueError(f'unknown config argument {arg!r}: one of {", ".join(known)}')


def split_arg(arg: str, flag: str, paper_names=('paper',)) -> tuple[bool, str]:
  """(flag given, the corpus argument) of a comma-combined config argument such as
  'tiny,augmented': at most one of paper_names/synthetic/tiny (default the first),
  checked by `check_arg`, plus optionally `flag`."""
  tokens = [t for t in str(arg).split(',') if t]
  rest = [t for t in tokens if t != flag] or [paper_names[0]]
  if len(rest) != 1:
    names = ', '.join(tuple(paper_names) + ('synthetic', 'tiny'))
    raise ValueError(f'config argument {arg!r}: at most one of {names} '
                     f'(and optionally {flag})')
  check_arg(rest[0], paper_names)
  return flag in tokens, rest[0]


def use_synthetic(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Points config c at the embedded synthetic corpus ('synthetic' | 'tiny')."""
  c.data.name = 'ser_synthetic'
  c.data.builder_config = 'demo' if arg == 'synthetic' else 'tiny'
  c.data.where = {}
  c.data.exclude_labels = ()
  c.seeds = ()
  c.reference = ''
  if arg == 'synthetic':
    c.protocol = protocol('loso_session')
    c.log_every_steps = 10
  elif arg == 'tiny':
    c.protocol = protocol('loso')
    c.num_epochs = 2
    c.batch_size = 8
    c.log_every_steps = 1
    if 'early_stopping' in c:
      c.early_stopping.patience = 0
  else:
    raise ValueError(f'use_synthetic: {arg!r} is neither synthetic nor tiny')
  return c
