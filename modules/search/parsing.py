"""Reads a search-space file's text (modules/search/search_space.py checks what it declares).

YAML as PyYAML's safe loader reads it, except that 1e-3 is a float (as in JSON)
and a name declared twice is an error; or JSON, with the same rule.
"""

import json
import re


class RepeatedKey(ValueError):
  """A hyperparameter declared twice in one file."""


def _yaml_loader():
  import yaml

  class Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading 1e-3 as a float (as JSON does) and refusing repeated keys."""

  Loader.add_implicit_resolver(
    'tag:yaml.org,2002:float',
    re.compile(r'^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$'),
    list('-+0123456789'),
  )

  def mapping(loader, node):
    seen = set()
    for key_node, _ in node.value:
      key = loader.construct_object(key_node)
      if key in seen:
        raise RepeatedKey(f'{key}: declared twice (line {key_node.start_mark.line + 1})')
      seen.add(key)
    return loader.construct_mapping(node)

  Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
  return Loader


def parse(text: str, json_file: bool):
  """The parsed file; RepeatedKey for a name declared twice, ValueError for bad syntax."""
  if json_file:

    def no_duplicates(pairs):
      keys = [k for k, _ in pairs]
      for key in keys:
        if keys.count(key) > 1:
          raise RepeatedKey(f'{key}: declared twice')
      return dict(pairs)

    return json.loads(text, object_pairs_hook=no_duplicates)
  import yaml

  try:
    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
  except yaml.YAMLError as e:
    mark = getattr(e, 'problem_mark', None)
    where = f' at line {mark.line + 1}' if mark else ''
    problem = getattr(e, 'problem', None) or str(e).splitlines()[0]
    raise ValueError(f'not valid YAML{where} ({problem})') from None
