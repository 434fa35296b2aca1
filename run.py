"""ser_jax entry point: train, evaluate or predict with one config.

  python run.py --config=configs/selfattn_gender.py:synthetic --workdir=runs/demo
  python run.py --config=configs/selfattn_gender.py:synthetic --workdir=runs/demo --mode=evaluate
  python run.py --config=configs/selfattn_gender.py:synthetic --workdir=runs/demo \
      --mode=predict --wav=clip.wav
"""
import errno
import json
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TensorFlow only reads the corpus and writes TensorBoard/SavedModels here; its
# oneDNN notice (printed twice, whatever TF_CPP_MIN_LOG_LEVEL says) goes with this.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

from ser_jax import xla_setup  # noqa: E402  (imports nothing heavy)

if __name__ == '__main__':
  # Huge pages for XLA's per-step buffers: a glibc tunable, read at start-up,
  # so this restarts the command with it once; then the XLA flags, which must
  # be in the environment before JAX starts (ser_jax/xla_setup.py).
  xla_setup.reexec_with_malloc_tunable()
  xla_setup.configure()

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import jax  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from ser_jax import checkpoints  # noqa: E402
from ser_jax import cli  # noqa: E402
from ser_jax import input_pipeline  # noqa: E402
from ser_jax import monitoring  # noqa: E402
from ser_jax import predict  # noqa: E402
from ser_jax import protocols  # noqa: E402
from ser_jax import sharding  # noqa: E402
from ser_jax import trainers  # noqa: E402
from ser_jax import workdir as workdir_lib  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file.',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints and reports.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'evaluate', 'predict', 'export'],
                          'train (then evaluate on test), evaluate a checkpoint, predict, '
                          'or export a checkpoint as a TF SavedModel.')
_EXPORT_DIR = flags.DEFINE_string('export_dir', None,
                                  'export: output folder (default WORKDIR/export).')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'evaluate/predict: a step number, a step folder or a checkpoints '
    'folder (default: the workdir\'s best checkpoint by validation UAR).')
_ALLOW_CHANGE = flags.DEFINE_list(
    'allow_config_change', [], 'Config fields (or groups such as model) that may differ from '
    'the config the workdir was trained with, e.g. num_epochs,learning_rate; all: any.')
_SPLIT = flags.DEFINE_list('split', ['test'], 'evaluate: split(s) to evaluate: test, '
                          'validation (or val), train.')
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None, 'evaluate: folder for the results (default WORKDIR/eval; the '
    "training's results.json is never touched).")
_WAV = flags.DEFINE_string('wav', None, 'predict: audio file(s) and/or folder(s), comma-separated.')
_GENDER = flags.DEFINE_enum('gender', None, ['female', 'male'],
                            'predict: speaker gender (default: average over both).')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Several hosts: host:port of process 0 '
    '(else $JAX_COORDINATOR_ADDRESS).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Several hosts: number of processes (else $JAX_NUM_PROCESSES).')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'Several hosts: this process (else $JAX_PROCESS_ID).')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False,
                                 'Let JAX detect a cluster (SLURM, Open MPI, ...).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  config = _CONFIG.value
  sharding.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                  _PROCESS_ID.value, _DISTRIBUTED.value)
  try:
    trainer = trainers.get(config)     # checks the config has the fields it reads
    if _MODE.value == 'train':
      if not _WORKDIR.value:
        raise app.UsageError('--workdir is required for training')
      trainers.check_values(config)    # and values it can use, before any read or write
      with workdir_lib.lock(_WORKDIR.value):
        changes = workdir_lib.check_config(config, _WORKDIR.value, 'train', _ALLOW_CHANGE.value)
        if changes:
          logging.warning('Resuming %s with changed config fields (allowed by '
                          '--allow_config_change; recorded in %s): %s', _WORKDIR.value,
                          workdir_lib.COMMANDS_NAME, ', '.join(changes))
        workdir_lib.record_command(_WORKDIR.value, 'train', changes)
        _train(config)
      return
    if _MODE.value != 'predict':   # predict asks for its predictor below
      trainer.function(_MODE.value)    # says so when the trainer lacks the mode
    trained_in = _trained_workdir()
    if trained_in:
      workdir_lib.check_config(config, trained_in, _MODE.value, _ALLOW_CHANGE.value)
    if _MODE.value == 'evaluate':
      trainer.function('evaluate')(config, _WORKDIR.value, _CHECKPOINT.value,
                                   cli.split_names(_SPLIT.value), _OUTPUT_DIR.value)
    elif _MODE.value == 'export':
      out = _EXPORT_DIR.value or os.path.join(_WORKDIR.value or '.', 'export')
      info = trainer.function('export')(config, _WORKDIR.value, out, _CHECKPOINT.value)
      print(f'SavedModel of checkpoint step {info["checkpoint_step"]} written to {out}')
    else:
      if not _WAV.value:
        raise app.UsageError('--mode=predict needs --wav')
      failed = 0
      for result in predict.predict_files(config, _WORKDIR.value,
                                          predict.expand_paths(_WAV.value),
                                          _GENDER.value, _CHECKPOINT.value):
        print(json.dumps(result), flush=True)
        failed += 'error' in result
      if failed:
        print(f'{failed} file(s) could not be read', file=sys.stderr)
        sys.exit(1)
  except (app.UsageError, cli.UsageError, trainers.ModeNotAvailable,
          trainers.ConfigFieldMissing) as e:
    logging.debug('where the error was raised (--verbosity=1 shows it)', exc_info=True)
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except monitoring.TrainingInterrupted as e:
    print(f'interrupted: {e}', file=sys.stderr)
    sys.exit(128 + e.signum)
  except KeyboardInterrupt:   # outside the neural loop (e.g. SVM statistics)
    print('interrupted; re-run the same command to resume (what finished is kept)',
          file=sys.stderr)
    sys.exit(130)
  except monitoring.NonFiniteLossError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(3)
  except input_pipeline.CorpusNotPreparedError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except FileNotFoundError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except (workdir_lib.ConfigMismatchError, checkpoints.CheckpointMismatchError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except workdir_lib.WorkdirBusyError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(EXIT_WORKDIR_BUSY)
  except checkpoints.CheckpointSaveError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(EXIT_WRITE_FAILED)
  except OSError as e:
    if e.errno not in _WRITE_ERRNOS:
      raise
    print(f'error: {e.filename or "a file in " + str(_WORKDIR.value)}: {e.strerror}. Checkpoints '
          'saved before this are intact; free some space or use another --workdir, then '
          're-run the same command to resume.', file=sys.stderr)
    sys.exit(EXIT_WRITE_FAILED)


EXIT_WRITE_FAILED = 4    # a checkpoint or result could not be written (disk full, read-only)
EXIT_WORKDIR_BUSY = 5    # another run holds the workdir's lock
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG)


def _train(config):
  """Trains one run or a whole protocol in --workdir and prints the test figures."""
  if protocols.is_protocol_run(config):
    summary = protocols.run_protocol(config, _WORKDIR.value)
    if jax.process_index() == 0:
      over, uar, wa = protocols.headline(summary)
      print(f'PROTOCOL {summary["protocol"]}: {summary["num_runs"]} runs; test UAR '
            f'{uar[0]:.2f} ± {uar[1]:.2f}%  WA {wa[0]:.2f} ± {wa[1]:.2f}% over {over} '
            f'(report: {os.path.join(os.path.abspath(_WORKDIR.value), "summary.md")})')
    return
  results = trainers.get(config).function('train')(config, _WORKDIR.value)
  if jax.process_index() == 0:
    print(f'TEST UAR {100 * results["test"]["uar"]:.2f}%  WA {100 * results["test"]["wa"]:.2f}%'
          f'  (checkpoint step {results["checkpoint_step"]}, results in '
          f'{os.path.join(os.path.abspath(_WORKDIR.value), "results.json")})')


def _trained_workdir():
  """The workdir whose config.json describes the model evaluate/predict/export
  will load: --workdir, else the run folder above a --checkpoint path."""
  if _WORKDIR.value:
    return _WORKDIR.value
  spec = _CHECKPOINT.value
  if not spec or spec.isdigit():
    return None
  path = os.path.abspath(os.path.expanduser(spec))
  if os.path.basename(path).isdigit():        # WORKDIR/checkpoints/STEP
    return os.path.dirname(os.path.dirname(path))
  if os.path.isdir(os.path.join(path, 'checkpoints')):
    return path
  return os.path.dirname(path)                # WORKDIR/checkpoints


class _QuietLibraries:
  """Drops INFO chatter of Orbax, TFDS, TensorFlow and JAX, and TFDS's notes about its own
  deprecated fields (other warnings and errors still show)."""

  def filter(self, record):
    lib = next((lib for lib in ('orbax', 'tensorflow_datasets', 'tensorflow', 'jax')
                if f'-packages/{lib}/' in record.pathname), None)   # site-/dist-packages
    if lib is None:
      return True
    if lib == 'tensorflow_datasets' and 'is deprecated' in str(record.msg):
      return False
    return record.levelno >= 30


if __name__ == '__main__':
  _error = cli.config_error(sys.argv)
  if _error:
    print(f'error: {_error}', file=sys.stderr)
    sys.exit(2)
  flags.mark_flags_as_required(['config'])
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  app.run(main)
