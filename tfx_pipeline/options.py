"""Command-line flags made from the configuration's fields, and the runners' one kind of error.

Every field of `PipelineConfig` and `ModuleConfig` declared with `option(...)`
(modules/module_config.py says how to add one) is a flag: `add_flags` adds
them to a runner's parser, and `from_args` builds the configuration back from
the parsed flags. A flag's argparse name (`--no-tune` -> `no_tune`) is also
its key in run_vertex.py's --config file.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Callable, Iterator, Optional, Tuple

RUNNERS = ('local', 'vertex')
# What '{storage}' reads in a help text, by runner: where its paths live.
_STORAGE = {'local': 'local', 'vertex': 'gs://'}


class UsageError(ValueError):
  """Settings or input a command cannot use; the message names them and the fix.

  The runners print it as one `error: ...` line and exit with status 2.
  """


def _scalar(kind: Any) -> Any:
  """int for Optional[int], and so on."""
  if typing.get_origin(kind) is typing.Union:
    return next(k for k in typing.get_args(kind) if k is not type(None))
  return kind


_Field = Tuple[dataclasses.Field, Any, Optional[str]]


def _fields(cls, runner: str, prefix: str = '') -> Iterator[_Field]:
  """(field, type, flag) for every field of `cls`; flag is None where `runner` takes none.

  `prefix` starts every flag name: a nested dataclass declared with
  `option(..., prefix='tuner')` gives its fields' flags as --tuner-....
  """
  kinds = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    meta = field.metadata
    flag = None
    if 'help' in meta and runner in meta.get('runners', RUNNERS):
      flag = meta.get('flag') or '--' + prefix + field.name.replace('_', '-')
    yield field, kinds[field.name], flag


def _nested(field: dataclasses.Field, prefix: str) -> Tuple[str, Optional[str]]:
  """The flag prefix and the '{what}' of a nested dataclass field's own fields."""
  meta = field.metadata
  return (prefix + meta['prefix'] + '-', meta['help']) if 'prefix' in meta else (prefix, None)


def _dest(flag: str) -> str:
  return flag[2:].replace('-', '_')


def _repeated(kind: Any) -> bool:
  """A tuple option: its flag may be given many times."""
  return typing.get_origin(kind) is tuple


def add_flags(parser, cls, runner: str, prefix: str = '', what: Optional[str] = None) -> None:
  """Adds to `parser` (or an argument group) a flag per option of `cls` that `runner` takes."""
  for field, kind, flag in _fields(cls, runner, prefix):
    if dataclasses.is_dataclass(kind):
      add_flags(parser, kind, runner, *_nested(field, prefix))
      continue
    if not flag:
      continue
    meta = field.metadata
    text = meta['help'].replace('{storage}', _STORAGE[runner])
    if what:
      text = text.replace('{what}', what)
    if _scalar(kind) is bool:
      if field.default != flag.startswith('--no-'):
        raise TypeError(
          f'{cls.__name__}.{field.name}: a bool option that defaults to True '
          "takes a '--no-...' flag, one that defaults to False any other."
        )
      parser.add_argument(flag, action='store_true', help=text)
    elif _repeated(kind):
      parser.add_argument(
        flag, action='append', default=list(field.default), metavar=meta.get('metavar'), help=text
      )
    else:
      parser.add_argument(
        flag,
        type=None if _scalar(kind) is str else _scalar(kind),
        default=field.default,
        choices=meta.get('choices'),
        metavar=meta.get('metavar'),
        help=text,
      )


def from_args(
  cls,
  args: argparse.Namespace,
  runner: str,
  path: Optional[Callable[[str], str]] = None,
  prefix: str = '',
  **values: Any,
):
  """The `cls` that `runner`'s flags in `args` describe; `values` set fields outright.

  `path` converts the value of each path option (the local runner makes them
  absolute). Raises ValueError, from the dataclasses' own checks, for values
  that cannot work; a nested dataclass's message starts with its flags' prefix.
  """
  for field, kind, flag in _fields(cls, runner, prefix):
    if field.name in values:
      continue
    if dataclasses.is_dataclass(kind):
      values[field.name] = _nested_from_args(field, kind, args, runner, path, prefix)
    elif flag:
      value = getattr(args, _dest(flag))
      if _scalar(kind) is bool and flag.startswith('--no-'):
        value = not value
      if _repeated(kind):
        value = tuple(value)
      if path and value and field.metadata.get('path'):
        value = path(value)
      values[field.name] = value
  return cls(**values)


def _nested_from_args(field, kind, args, runner, path, prefix):
  """A nested dataclass from its flags; with a flag prefix, its errors name the flags."""
  inner = _nested(field, prefix)[0]
  if inner == prefix:
    return from_args(kind, args, runner, path, prefix)
  try:
    return from_args(kind, args, runner, path, inner)
  except ValueError as e:
    raise ValueError(f'--{inner}*: {e}') from None


def to_flags(config, runner: str, prefix: str = '') -> list:
  """The `runner` flags that give `config`'s values where they differ from the defaults.

  The inverse of `from_args`: parsing them builds `config` back.
  """
  argv = []
  # The defaults as constructed: a None default may resolve to a value (the image size).
  defaults = type(config)()
  for field, kind, flag in _fields(type(config), runner, prefix):
    value = getattr(config, field.name)
    if dataclasses.is_dataclass(kind):
      argv += to_flags(value, runner, _nested(field, prefix)[0])
    elif flag and value != getattr(defaults, field.name):
      if _scalar(kind) is bool:
        argv.append(flag)
      elif _repeated(kind):
        argv += [f'{flag}={item}' for item in value]
      else:
        argv += [flag, str(value)]
  return argv
