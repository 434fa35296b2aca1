"""The import structure the README's Layout section draws: its floors (each module
imports from its own floor or below), no cycles, the experiment layer below the
trainers, no trainer-name branches outside the trainers."""
import ast
import collections
import os
import subprocess
import sys

import pytest

from configs import selfattn_gender
from configs import svm_features
from ser_jax import trainers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(REPO, 'ser_jax')


def _modules():
  out = {}
  for folder, _, files in os.walk(LIB):
    for f in files:
      if f.endswith('.py'):
        path = os.path.join(folder, f)
        name = os.path.relpath(path, REPO)[:-3].replace(os.sep, '.')
        out[name[:-len('.__init__')] if name.endswith('.__init__') else name] = path
  return out


def _imports(path, modules):
  """The ser_jax modules `path` imports (anywhere in the file)."""
  found = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith('ser_jax'):
      for a in node.names:
        full = f'{node.module}.{a.name}'
        found.add(full if full in modules else node.module)
    elif isinstance(node, ast.Import):
      found |= {a.name for a in node.names if a.name.startswith('ser_jax')}
  return found


def test_no_import_cycles():
  modules = _modules()
  graph = {m: _imports(p, modules) - {m, 'ser_jax'} for m, p in modules.items()}
  # Packages count as one node with their modules (features, models).
  state = collections.defaultdict(int)   # 0 new, 1 on the stack, 2 done

  def visit(m, stack):
    state[m] = 1
    for n in graph.get(m, ()):
      if n.startswith(m + '.') or m.startswith(n + '.'):
        continue   # a package and its own modules
      assert state[n] != 1, 'import cycle: ' + ' -> '.join(stack + [m, n])
      if state[n] == 0:
        visit(n, stack + [m])
    state[m] = 2

  for m in sorted(graph):
    if state[m] == 0:
      visit(m, [])


def test_experiment_layer_imports_no_training_loop():
  modules = _modules()
  for name in ('ser_jax.experiment', 'ser_jax.neural_experiment', 'ser_jax.predict',
               'ser_jax.export', 'ser_jax.protocols'):
    assert not {m for m in _imports(modules[name], modules)
                if m.startswith('ser_jax.trainers.')}, name


def test_svm_and_predict_paths_load_no_flax_or_optax():
  code = ('import sys\n'
          'from ser_jax import experiment, predict, protocols\n'
          'from ser_jax.trainers import svm\n'
          'print(sorted(m for m in ("flax", "optax", "ser_jax.trainers.neural") '
          'if m in sys.modules))\n')
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == '[]'


def test_importing_ser_jax_sets_no_xla_defaults():
  """The XLA flags and the malloc tunable are the programs' choice (run.py, benchmarks)."""
  code = ('import os\nimport ser_jax, ser_jax.experiment, ser_jax.neural_experiment\n'
          'print(os.environ.get("XLA_FLAGS"), os.environ.get("GLIBC_TUNABLES"))\n')
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'GLIBC_TUNABLES')}
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip() == 'None None'


def _trainer_name_tests(path):
  """Lines of `path` that test something against a trainer's name ('svm', 'neural'),
  in any spelling: `config.trainer == 'svm'`, `cfg.get('trainer') != 'neural'`,
  `cfg['trainer'] in ('svm', ...)`. (`'svm' in config`, whether a config has the
  SVM's field group, is not a name test.)"""
  names = {'svm', 'neural'}
  is_name = lambda o: isinstance(o, ast.Constant) and o.value in names  # noqa: E731
  lines = []
  for node in ast.walk(ast.parse(open(path).read(), path)):
    if not isinstance(node, ast.Compare):
      continue
    operands = [node.left, *node.comparators]
    for op, left, right in zip(node.ops, operands, operands[1:]):
      if isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)) and (is_name(left)
                                                                     or is_name(right)):
        lines.append(node.lineno)
      elif (isinstance(op, (ast.In, ast.NotIn))
            and isinstance(right, (ast.Tuple, ast.List, ast.Set))
            and any(is_name(e) for e in right.elts)):
        lines.append(node.lineno)
  return lines


def test_only_the_registry_knows_trainer_names():
  paths = [p for n, p in _modules().items() if not n.startswith('ser_jax.trainers')]
  offenders = [f'{os.path.relpath(p, REPO)}:{i}' for p in paths + [os.path.join(REPO, 'run.py')]
               for i in _trainer_name_tests(p)]
  assert not offenders, offenders


def test_the_trainer_name_check_catches_every_spelling(tmp_path):
  path = tmp_path / 'm.py'
  path.write_text("a = config.trainer == 'svm'\nb = cfg.get('trainer') != 'neural'\n"
                  "c = cfg['trainer'] in ('svm', 'x')\nd = 'svm' in config\n"
                  "e = config.model.name == 'svm_features'\n")
  assert _trainer_name_tests(str(path)) == [1, 2, 3]


def test_the_registry_names_a_missing_config_field_and_an_absent_mode():
  config = selfattn_gender.get_config('tiny')
  assert trainers.get(config).name == 'neural'
  del config.features['max_segments']
  with pytest.raises(trainers.ConfigFieldMissing, match="'features.max_segments' is missing"):
    trainers.get(config)
  svm = trainers.get(svm_features.get_config('tiny'))
  for mode in ('evaluate', 'export'):
    with pytest.raises(trainers.ModeNotAvailable, match=f'--mode={mode} is not available'):
      svm.function(mode)
  assert callable(svm.function('predictor'))


def test_every_label_field_a_trainer_declares_is_one_it_reads():
  # so check_config catches a config without it, and a rename cannot leave a label reading
  # a field no trainer sets (the run would then never be labelled transductive or leaky).
  for trainer in trainers._TRAINERS.values():
    read = set(trainers._SHARED_FIELDS + trainer.fields)
    declared = {f for label in ('transductive', 'leaky') for group in getattr(trainer, label)
                for f in group}
    assert not {f for f in declared if not any(f == r or f.startswith(r + '.') for r in read)}


def _readme_floors():
  """{module or package prefix: floor index (0 = base)} as the README's Layout block draws them."""
  text = open(os.path.join(REPO, 'README.md')).read()
  block = text.split('## Layout', 1)[1].split('```', 2)[1]
  names = ('base', 'data', 'layer', 'trainers', 'top')
  floors, floor = {}, None
  for line in block.splitlines():   # 'floor    ser_jax/x.py   what it does'
    head, rest = line[:9].strip(), line[9:]
    if head in names:
      floor = names.index(head)
    elif head:
      floor = None   # run.py, configs/, ...: not a floor of the library
    if floor is not None and rest.startswith('ser_jax/'):
      floors[rest.split()[0].rstrip('/').removesuffix('.py').replace('/', '.')] = floor
  return floors


def _floor_of(module, floors):
  for prefix, floor in floors.items():
    if module == prefix or module.startswith(prefix + '.'):
      return floor
  return None


def test_each_module_imports_from_its_floor_or_below():
  floors = _readme_floors()
  modules = _modules()
  assert len(floors) >= 20 and set(floors.values()) == set(range(5)), floors
  unplaced = [m for m in modules if m not in ('ser_jax', 'ser_jax.cli')
              and _floor_of(m, floors) is None]
  assert not unplaced, f'modules the README Layout does not place: {unplaced}'
  assert not _imports(modules['ser_jax.cli'], modules) - {'ser_jax'}   # any floor may use it
  for m, path in modules.items():
    mine = _floor_of(m, floors)
    if mine is None:
      continue
    for n in _imports(path, modules) - {'ser_jax'}:
      theirs = _floor_of(n, floors)
      assert theirs is None or theirs <= mine, f'{m} (floor {mine}) imports {n} (floor {theirs})'
