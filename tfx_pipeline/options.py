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


def _fields(cls, runner: str) -> Iterator[Tuple[dataclasses.Field, Any, Optional[str]]]:
  """(field, type, flag) for every field of `cls`; flag is None where `runner` takes none."""
  kinds = typing.get_type_hints(cls)
  for field in dataclasses.fields(cls):
    meta = field.metadata
    flag = None
    if 'help' in meta and runner in meta.get('runners', RUNNERS):
      flag = meta.get('flag') or '--' + field.name.replace('_', '-')
    yield field, kinds[field.name], flag


def add_flags(parser, cls, runner: str) -> None:
  """Adds to `parser` (or an argument group) a flag per option of `cls` that `runner` takes."""
  for field, kind, flag in _fields(cls, runner):
    if dataclasses.is_dataclass(kind):
      add_flags(parser, kind, runner)
      continue
    if not flag:
      continue
    meta = field.metadata
    text = meta['help'].replace('{storage}', _STORAGE[runner])
    if _scalar(kind) is bool:
      if field.default != flag.startswith('--no-'):
        raise TypeError(
          f'{cls.__name__}.{field.name}: a bool option that defaults to True '
          "takes a '--no-...' flag, one that defaults to False any other."
        )
      parser.add_argument(flag, action='store_true', help=text)
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
  **values: Any,
):
  """The `cls` that `runner`'s flags in `args` describe; `values` set fields outright.

  `path` converts the value of each path option (the local runner makes them
  absolute). Raises ValueError, from the dataclasses' own checks, for values
  that cannot work.
  """
  for field, kind, flag in _fields(cls, runner):
    if field.name in values:
      continue
    if dataclasses.is_dataclass(kind):
      values[field.name] = from_args(kind, args, runner, path)
    elif flag:
      value = getattr(args, flag[2:].replace('-', '_'))
      if _scalar(kind) is bool and flag.startswith('--no-'):
        value = not value
      if path and value and field.metadata.get('path'):
        value = path(value)
      values[field.name] = value
  return cls(**values)


def to_flags(config, runner: str) -> list:
  """The `runner` flags that give `config`'s values where they differ from the defaults.

  The inverse of `from_args`: parsing them builds `config` back.
  """
  argv = []
  for field, kind, flag in _fields(type(config), runner):
    value = getattr(config, field.name)
    if dataclasses.is_dataclass(kind):
      argv += to_flags(value, runner)
    elif flag and value != field.default:
      argv += [flag] if _scalar(kind) is bool else [flag, str(value)]
  return argv
