"""The usual command-line mistakes: one paragraph, exit status 2, before any work."""
import os
import subprocess
import sys

import pytest

from ser_jax import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = 'configs/selfattn_gender.py'


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
  monkeypatch.chdir(REPO)


def test_a_config_file_that_does_not_exist_lists_the_configs():
  msg = cli.config_error(['run.py', '--config=configs/selfatn_gender.py:synthetic'])
  assert "'configs/selfatn_gender.py' does not exist" in msg
  assert 'configs/selfattn_gender.py' in msg and 'configs/cnn2d_bilstm.py' in msg
  assert 'configs/common.py' not in msg


def test_an_unknown_config_argument_names_the_known_ones():
  msg = cli.config_error(['run.py', f'--config={CONFIG}:synthetc'])
  assert "unknown config argument 'synthetc'" in msg and 'synthetic' in msg


@pytest.mark.parametrize('override,nearest', [
    ('--config.batch_sise=3', 'batch_size'),
    ('--config.modle.dtype=bfloat16', 'model.dtype'),
    ('--config.model.lstm_unit=8', 'model.lstm_units'),
])
def test_an_unknown_field_names_the_nearest(override, nearest):
  msg = cli.config_error(['run.py', f'--config={CONFIG}:synthetic', override])
  field = override.split('=')[0][len('--config.'):]
  assert msg.startswith(f'--config.{field}: ') and f"no field '{field}'" in msg
  assert 'nearest: ' in msg and nearest in msg.split('nearest: ')[1]


def test_an_unknown_field_without_near_names_lists_its_group():
  msg = cli.config_error(['run.py', f'--config={CONFIG}:synthetic', '--config.model.zzz=1'])
  assert 'the fields of model: ' in msg and 'lstm_units' in msg


def test_good_command_lines_pass():
  for argv in (['run.py', f'--config={CONFIG}:synthetic', '--config.model.lstm_units=8',
                '--config.protocol.fold', '2', '--workdir=x'],
               ['run.py', '--config', CONFIG],
               ['run.py', '--mode=train']):      # absl reports the missing flag itself
    assert cli.config_error(argv) is None, argv


def test_run_py_prints_one_paragraph():
  proc = subprocess.run([sys.executable, 'run.py', f'--config={CONFIG}:synthetic',
                         '--config.model.nonexistent=1', '--workdir=/nonexistent/x'],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.startswith('error: --config.model.nonexistent: '), proc.stderr[-2000:]
  assert len(proc.stderr.strip().splitlines()) == 1 and 'Traceback' not in proc.stderr


def test_split_names_resolve_aliases_and_refuse_typos():
  assert cli.split_names(['val', 'test', 'validation']) == ('validation', 'test')
  assert cli.split_names(['Train']) == ('train',)
  with pytest.raises(cli.UsageError, match=r'unknown split\(s\) tset'):
    cli.split_names(['test', 'tset'])


def test_an_output_folder_that_cannot_be_written_is_refused(tmp_path):
  cli.check_writable(str(tmp_path / 'new' / 'eval'), '--output_dir=X')
  (tmp_path / 'file').write_text('')
  with pytest.raises(cli.UsageError, match='pass --output_dir=X'):
    cli.check_writable(str(tmp_path / 'file' / 'eval'), '--output_dir=X')


def test_overrides_below_a_value_or_into_a_list():
  msg = cli.config_error(['run.py', f'--config={CONFIG}:synthetic', '--config.seed.zzzz_long=1'])
  assert msg == (f'--config.seed.zzzz_long: in {CONFIG}:synthetic, seed is a value (0), not a '
                 'group of fields.')
  # list items and quoted keys are ml_collections' to check
  assert cli.config_error(['run.py', f'--config={CONFIG}:synthetic',
                           '--config.model.conv_features[0]=8']) is None


def test_an_offline_variant_can_be_dropped_from_the_command_line(tmp_path):
  """`--config.augment.offline.stretch_rate=None` parses (the field is typed object), as
  does a tuple of speed rates."""
  out = subprocess.run(
      [sys.executable, 'run.py', '--config=configs/cnn2d_bilstm.py:tiny',
       '--config.augment.offline.stretch_rate=None', '--config.augment.offline.pitch_steps=0.5',
       '--config.augment.offline.speed_rates=(0.9,1.1)',
       f'--workdir={tmp_path}', '--mode=evaluate'], capture_output=True, text=True)
  assert out.returncode != 0 and 'no checkpoints' in out.stderr + out.stdout
  # What those flags make of the config, parsed as run.py parses them.
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from ser_jax import augment  # pylint: disable=g-import-not-at-top
  argv = ['run.py', f'--config={os.path.join(REPO, "configs/cnn2d_bilstm.py")}:tiny',
          '--config.augment.offline.stretch_rate=None', '--config.augment.offline.pitch_steps=0.5',
          '--config.augment.offline.speed_rates=(0.9,1.1)']
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', flag_values=fv, sys_argv=argv)
  fv(argv)
  offline = fv.config.augment.offline
  assert offline.stretch_rate is None and offline.pitch_steps == 0.5
  assert tuple(offline.speed_rates) == (0.9, 1.1)
  assert 'stretch' not in ' '.join(augment.offline_variants(offline))
  assert augment.offline_variants(offline)[-2:] == ['speed0.9', 'speed1.1']


def test_every_command_of_the_results_table_parses_with_todays_configs():
  """docs/results.md gives each row's command: each must still name real configs and
  fields, with values of the fields' types (as run.py parses them), so a renamed
  field or config cannot leave a row that no longer runs."""
  import re  # pylint: disable=g-import-not-at-top
  import shlex  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from ser_jax import trainers  # pylint: disable=g-import-not-at-top
  text = open(os.path.join(REPO, 'docs', 'results.md')).read()
  commands = re.findall(r'^(\d+)\. `(python run\.py [^`]+)`', text, re.M)
  assert [int(n) for n, _ in commands] == list(range(1, len(commands) + 1))
  table = text.split('\n| `configs/', 1)[1].split('\n\n', 1)[0]   # the table: one row a command
  assert len(commands) == table.count('\n| `configs/') + 1 > 50
  for n, command in commands:
    argv = ['run.py'] + [a.replace('--config=configs/', f'--config={REPO}/configs/')
                         for a in shlex.split(command)[2:]]
    fv = flags.FlagValues()
    config_flags.DEFINE_config_file('config', flag_values=fv, sys_argv=argv)
    for name in ('workdir', 'mode'):
      flags.DEFINE_string(name, None, '', flag_values=fv)
    try:
      fv(argv)
    except Exception as e:  # pylint: disable=broad-except
      pytest.fail(f'command {n} of docs/results.md does not parse: {e}')
    assert fv.workdir, n
    # ... and run.py's checks of the values accept it (no row refused by a new check).
    try:
      trainers.get(fv.config)
      trainers.check_values(fv.config)
    except (cli.UsageError, trainers.ConfigFieldMissing) as e:
      pytest.fail(f'run.py refuses command {n} of docs/results.md: {e}')


@pytest.mark.parametrize('overrides,message', [
    ({'model.name': 'cnn2d'}, "unknown model 'cnn2d'"),
    ({'optimizer': 'adamw2'}, "unknown optimizer 'adamw2'"),
    ({'speaker_norm': True, 'utterance_norm': True}, 'are alternatives'),
    ({'batch_size': 0}, 'must be at least 1'),
    ({'batch_size': 8, 'grad_accum_steps': 3}, 'grad_accum_steps=3 must divide'),
    ({'ema_decay': 0.99, 'ema_warmup': 1.0}, 'ema_warmup=1.0 must be above 1'),
    ({'early_stopping.mode': 'maxx'}, 'must be min or max'),
    ({'features.name': 'mfc'}, "unknown frontend 'mfc'"),
    ({'features.n_mfcc': 200}, 'features: need 0 < n_mfcc=200'),
    ({'features.win_length': 4096}, 'features: win_length=4096 must be'),
    ({'protocol.name': 'loso', 'protocol.fold': 9}, 'protocol.fold=9 out of range'),
    ({'protocol.name': 'group_kfold', 'protocol.k': 1}, 'protocol.k=1: k-fold protocols need'),
    ({'num_epochs': 0}, 'num_epochs=0: must be at least 1'),
    ({'log_every_steps': 0}, 'log_every_steps=0: must be at least 1'),
    ({'selection.metric': 'val_uarr'}, "selection.metric='val_uarr': one of"),
    ({'early_stopping.patience': 3, 'early_stopping.metric': 'loss'},
     "early_stopping.metric='loss': one of"),
    ({'protocol.folds': '0-4'}, "protocol.folds='0-4': 'all', or folds"),
    ({'data.name': 'ravdess+tes'}, "data.name names 'tes', not a corpus"),
    ({'data.name': 'crema_d'}, "names 'crema_d'"),   # TFDS's catalog has one: not ours
    ({'aggregation': 'meann'}, "aggregation='meann'"),
    ({'model.pool': (9, 9)}, 'model: max_pool: window'),   # found by tracing the init
])
def test_a_config_value_no_run_can_use_is_a_usage_error(overrides, message):
  """Values the command line's field check cannot judge (a model name, a batch, a
  fold) fail as cli.UsageError, which run.py prints as one line with exit status 2,
  not as a traceback: trainers.check_values, which run.py calls before it reads or
  writes anything, refuses all but what depends on the corpus (a fold beyond its
  speakers: the split refuses it)."""
  from ser_jax import splits  # pylint: disable=g-import-not-at-top
  from ser_jax import trainers  # pylint: disable=g-import-not-at-top
  config = cli.load_config('configs/cnn2d_bilstm.py:tiny')
  for field, value in overrides.items():
    *parents, leaf = field.split('.')
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  with pytest.raises(cli.UsageError, match=message):
    trainers.check_values(config)
    splits.speaker_split({'a': 's1', 'b': 's1', 'c': 's2', 'd': 's2'}, config.protocol)


def test_run_py_prints_a_config_value_mistake_as_one_line_before_any_write(tmp_path):
  workdir = tmp_path / 'run'
  proc = subprocess.run([sys.executable, 'run.py', '--config=configs/cnn2d_bilstm.py:tiny',
                         '--config.model.name=cnn2d', f'--workdir={workdir}'],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("error: unknown model 'cnn2d'") and 'Traceback' not in proc.stderr
  # Nothing written: the corrected command can use the same workdir.
  assert not workdir.exists()


def test_load_config_for_tools_outside_run_py():
  assert cli.load_config(f'{CONFIG}:synthetic').model.name == 'selfattn_gender'
  with pytest.raises(cli.UsageError, match="unknown config argument 'synthetc'"):
    cli.load_config(f'{CONFIG}:synthetc')
  with pytest.raises(cli.UsageError, match='does not exist'):
    cli.load_config('configs/svm_feature.py')
  with pytest.raises(cli.UsageError, match='no config given'):
    cli.load_config('')
