"""Command-line mistakes caught before any work, as one paragraph each.

`split_names` and `check_writable` check `--split` and an output folder.

`config_error(argv)` checks `--config=FILE[:ARG]` and every `--config.FIELD=VALUE`
override of an absl command line the way ml_collections will read them, and
returns the message for the usual typos (a config file that does not exist, an
unknown config argument, an unknown field: with the nearest names), or None.
ml_collections reports these lazily, as a double traceback on first use of the
config, or as an AttributeError whose hint is escaped inside a repr.
"""
from __future__ import annotations

import difflib
import glob
import importlib.util
import os
import tempfile
from typing import Sequence

import ml_collections


def _flag_values(argv: Sequence[str], name: str) -> list[tuple[str, str]]:
  """(flag, value) for every `--name...=v` / `--name... v` in argv (absl syntax)."""
  out, args = [], list(argv[1:])
  for i, arg in enumerate(args):
    if arg == '--':
      break
    if not arg.startswith(('--' + name, '-' + name)):
      continue
    flag, eq, value = arg.lstrip('-').partition('=')
    if flag != name and not flag.startswith(name + '.'):
      continue
    if not eq and i + 1 < len(args) and not args[i + 1].startswith('-'):
      value = args[i + 1]
    out.append((flag, value))
  return out


def list_configs(path: str) -> list[str]:
  """The config files beside `path` (or in ./configs when that folder is missing)."""
  folder = os.path.dirname(path) or '.'
  if not os.path.isdir(folder):
    folder = 'configs'
  return sorted(p for p in glob.glob(os.path.join(folder, '*.py'))
                if not os.path.basename(p).startswith(('_', 'common')))


def _load(path: str, arg: str | None) -> ml_collections.ConfigDict:
  spec = importlib.util.spec_from_file_location('_ser_jax_config_check', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module.get_config()


def field_names(config, prefix: str = '') -> list[str]:
  """Every dotted field of a ConfigDict (groups included)."""
  out = []
  for key in config.keys():
    name = prefix + key
    out.append(name)
    value = config[key]
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out += field_names(value, name + '.')
  return out


def _has_field(config, dotted: str) -> bool:
  node = config
  for part in dotted.split('.'):
    if not isinstance(node, (ml_collections.ConfigDict, dict)) or part not in node:
      return False
    node = node[part]
  return True


def unknown_field_message(config, field: str, where: str) -> str:
  """The field, the nearest existing names (a typo in the leaf is matched within
  its group, one in a group name over every dotted name), else the group's fields."""
  parts = field.split('.')
  depth = 0
  while depth < len(parts) - 1 and _has_field(config, '.'.join(parts[:depth + 1])):
    depth += 1
  group = '.'.join(parts[:depth])
  node = config_at(config, group) if group else config
  if not isinstance(node, (ml_collections.ConfigDict, dict)):
    return (f'--config.{field}: in {where}, {group} is a value ({node!r}), not a group of '
            'fields.')
  near = [f'{group}.{k}' if group else k
          for k in difflib.get_close_matches(parts[depth], list(node.keys()), n=4, cutoff=0.6)]
  rest = '.'.join(parts[depth + 1:])   # a typo in a group name: keep what follows it
  if rest:
    near = [f'{m}.{rest}' for m in near if _has_field(config, f'{m}.{rest}')] or near
  if not near:
    near = difflib.get_close_matches(field, field_names(config), n=4, cutoff=0.75)
  if near:
    hint = 'nearest: ' + ', '.join(near)
  elif group:
    hint = f'the fields of {group}: ' + ', '.join(sorted(node.keys()))
  else:
    hint = 'top-level fields: ' + ', '.join(sorted(config.keys()))
  return f'--config.{field}: {where} has no field {field!r}; {hint}.'


def config_at(config, dotted: str):
  for part in filter(None, dotted.split('.')):
    config = config[part]
  return config


def config_error(argv: Sequence[str]) -> str | None:
  """The one-paragraph error for argv's --config mistakes, or None if it loads."""
  given = _flag_values(argv, 'config')
  files = [v for f, v in given if f == 'config']
  if not files or not files[-1]:
    return None   # absl reports the missing required flag itself
  spec = files[-1]
  path, colon, arg = spec.partition(':')
  if not os.path.isfile(path):
    known = list_configs(path)
    return (f'--config={spec}: config file {path!r} does not exist. '
            + (f'Configs: {", ".join(known)} (e.g. --config={known[0]}:synthetic).'
               if known else 'Pass a Python file with a get_config() function.'))
  try:
    config = _load(path, arg if colon else None)
  except ValueError as e:   # an unknown config argument (configs/common.check_arg)
    return f'--config={spec}: {e}'
  for flag, _ in given:
    if flag != 'config':
      field = flag[len('config.'):]
      if '[' in field or '"' in field or "'" in field:
        continue   # an item of a list or a quoted key: left to ml_collections
      if not _has_field(config, field):
        return unknown_field_message(config, field, spec)
  return None


def load_config(spec: str) -> ml_collections.ConfigDict:
  """The config of `--config=spec` (PATH or PATH:ARG) for tools outside run.py;
  UsageError with config_error's paragraph if it does not load."""
  error = config_error(['', f'--config={spec}']) if spec else 'no config given (--config=PATH[:ARG])'
  if error:
    raise UsageError(error)
  path, colon, arg = spec.partition(':')
  return _load(path, arg if colon else None)


class UsageError(ValueError):
  """A mistake in the command line or in a config's values (an unknown model, a fold
  out of range, a batch the devices cannot split): run.py prints it as one line and
  exits with 2 (`--verbosity=1` logs where it was raised). The modules that read a
  config field raise it where they judge the value, and `trainers.check_values` has
  them judge every value it can before a training run reads or writes anything;
  library functions keep ValueError/TypeError for their own arguments."""


class ModeNotAvailable(ValueError):
  """The trainer (or this trained run) does not offer the requested mode; run.py
  prints it as one line (`trainers.ModeNotAvailable` is this class)."""


SPLIT_NAMES = {'test': 'test', 'validation': 'validation', 'val': 'validation',
               'valid': 'validation', 'dev': 'validation', 'train': 'train',
               'training': 'train'}


def split_names(values: Sequence[str]) -> tuple[str, ...]:
  """--split's names with aliases resolved (val → validation), in order, once each."""
  unknown = [v for v in values if v.strip().lower() not in SPLIT_NAMES]
  if unknown or not values:
    raise UsageError(f'--split={",".join(values)}: unknown split(s) {", ".join(unknown)}; '
                     'use test, validation (or val) and/or train, comma-separated')
  return tuple(dict.fromkeys(SPLIT_NAMES[v.strip().lower()] for v in values))


def check_writable(folder: str, remedy: str):
  """UsageError (with `remedy`) if `folder` cannot be created or written."""
  try:
    os.makedirs(folder, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder):
      pass
  except OSError as e:
    raise UsageError(f'cannot write to {folder} ({e.strerror}); pass {remedy}') from None
