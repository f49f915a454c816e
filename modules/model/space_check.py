"""Does this search space fit this model? Every name in it must be read by the model or the fit.

The runners call `check_space` before any component (tfx_pipeline/local/preflight.py,
run_vertex.py): a name that neither the built-in model, a user's builder nor the
input pipeline reads is one line naming it and what is read instead; so is an
`image_size` the stored images are too small for.
"""

from __future__ import annotations

from typing import Iterable, List, Optional, Set

import keras
import keras_tuner

from modules.model import model
from modules.model.builder import call_builder, load_builder
from modules.model.hypermodel import fit_settings
from modules.module_config import PRETRAINED_BACKBONES, ModuleConfig
from modules.search import declaration, search_space
from modules.search.search_space import SearchSpaceError, Space


class _Reading(keras_tuner.HyperParameters):
  """HyperParameters that note every name the model reads (hp.get, hp['x'], hp.Int(...), ...)."""

  def __init__(self):
    super().__init__()
    self.read: Set[str] = set()

  def get(self, name):
    self.read.add(name)
    return super().get(name)

  def _retrieve(self, hp):
    self.read.add(hp.name)
    return super()._retrieve(hp)


def _active(space: Space, values: dict) -> dict:
  """`values` with inactive names dropped and newly active ones at their defaults."""
  out = {}
  for entry in space.spec:
    name = entry['name']
    condition = entry.get('condition')
    if condition and out.get(condition['parent'], object()) not in condition['values']:
      continue
    out[name] = values.get(name, declaration.default_value(entry))
  return out


def _assignments(space: Space, base: dict) -> Iterable[dict]:
  """Values that make each conditional name active in turn (its parents at their first value)."""
  for name in space.names:
    values = dict(base)
    for parent, allowed in space.conditions(name):
      values[parent] = allowed[0]
    yield _active(space, values)


def _sweep(space: Space, base: dict) -> Iterable[dict]:
  """One value changed at a time: every choice and boolean value, int ends."""
  for entry in space.spec:
    if entry['type'] in ('choice', 'boolean'):
      others = declaration.possible_values(entry)
    elif entry['type'] == 'int':
      others = [entry['min'], entry['max']]
    else:
      continue
    for value in others:
      if value != base.get(entry['name']):
        yield _active(space, {**base, entry['name']: value})


def names_read(space: Space, config: ModuleConfig, until: Optional[Set[str]] = None) -> Set[str]:
  """The names of `space` the model and the input pipeline read, over enough builds to tell.

  Builds at the defaults, then with each condition met; if some name is still
  unread, with one choice, boolean or int end changed at a time, until every
  name of `until` was read. The built-in model's head is built on made-up
  features (no backbone is loaded); a user's builder is called as in a trial.
  """
  until = set(space.names) if until is None else until
  builder = load_builder(config.hypermodel) if config.hypermodel else None
  config_hp = space.hyperparameters().get_config()
  base = _active(space, {})
  read: Set[str] = set()
  seen: List[dict] = []

  def build(values: dict) -> None:
    if values in seen:
      return
    seen.append(values)
    hp = _Reading.from_config(config_hp)
    hp.values = dict(values)
    if builder is None:
      model.build_head(hp, num_classes=2, feature_dim=8)
      model.fine_tune_layers(hp, config)
      model.backbone_view(hp, config)
    else:
      call_builder(config.hypermodel, builder, hp, 2, config.image_size)
    fit_settings(hp, config)
    read.update(hp.read)

  for values in [base, *_assignments(space, base)]:
    build(values)
  for values in _sweep(space, base):
    if until <= read:
      break
    build(values)
  keras.backend.clear_session()
  return read


def check_space(space: Space, config: ModuleConfig) -> None:
  """SearchSpaceError for a name in `space` that neither the model nor the input pipeline reads."""
  if not space.spec:
    return
  if search_space.backbone_choices(space) and config.backbone not in PRETRAINED_BACKBONES:
    raise SearchSpaceError(
      f'--search-space {space.source}: backbone: the space chooses the backbone, so '
      f'--backbone {config.backbone} would not be used: drop --backbone.'
    )
  read = names_read(space, config)
  for name in space.names:
    if name in read:
      continue
    if config.hypermodel:
      who = f'{config.hypermodel} does not read it'
      if read - set(search_space.FIT_NAMES):
        who += f' (it reads {", ".join(sorted(read - set(search_space.FIT_NAMES)))})'
    elif name == 'fine_tune_layers':
      who = 'the built-in model reads it only with --fine-tune on a SavedModel backbone'
    elif name == 'image_size':
      who = 'the built-in model reads it only on a SavedModel backbone, not --backbone cnn'
    else:
      always = [n for n in search_space.MODEL_NAMES if n not in ('fine_tune_layers', 'image_size')]
      who = (
        f'the built-in model does not read it (it reads {", ".join(always)}, image_size on '
        'a SavedModel backbone, and fine_tune_layers with --fine-tune)'
      )
    fit = ', '.join(search_space.FIT_NAMES)
    raise SearchSpaceError(
      f'--search-space {space.source}: {name}: {who}; the input pipeline reads {fit}.'
    )
  _check_image_sizes(space, config)


def _check_image_sizes(space: Space, config: ModuleConfig) -> None:
  """The built-in model's `image_size`: sizes it can list, none above the stored --image-size.

  Each size is one more backbone pass of the BackboneFeatures step, and a trial's
  model resizes the stored images down to it.
  """
  if 'image_size' not in space.names or not model.reads_image_size(config):
    return
  prefix = f'--search-space {space.source}: image_size'
  entry = space.entry('image_size')
  if entry['type'] == 'int' and (entry['step'] is None or entry['sampling'] != 'linear'):
    raise SearchSpaceError(
      f'{prefix}: give the int range a step (and linear sampling), or list the sizes as a '
      'choice: the backbone runs over every image once for each size.'
    )
  largest = max(search_space.image_sizes(space))
  if largest > config.image_size:
    raise SearchSpaceError(
      f'{prefix}: {largest} is larger than --image-size {config.image_size}, the size images '
      f'are stored at: pass --image-size {largest} or more, or leave --image-size out to '
      'store them at the largest size the space declares.'
    )
