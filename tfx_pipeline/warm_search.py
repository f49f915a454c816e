"""--warm-start on the runner's side: the earlier search's trials that fit the new space.

The runner reads the earlier search here, where its folder is, and the
pipeline puts what fits in the Tuner's custom_config as JSON
(tuning_state.WARM_TRIALS_KEY), as it does the search space: the local Tuner,
a parallel search's chief and a Vertex AI Tuner job (which cannot read a
local path) all get the same trials, and they key the Tuner's cache.
`tuner_fn` gives them to the oracle (modules/tuning/warm_trials.py).

PATH is a search folder, or a tuning folder or pipeline root whose latest
search is taken: the report's own lookup (`report.find_project`). The
earlier search's own COMPLETED trials count (pruned ones too: they are scored),
not the warm trials it learnt from itself. Each problem is one line
(`WarmStartError`); no trial fitting the new space is one of them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import List, Optional

# Shown reasons why trials do not fit, at most: the line stays one line.
_REASONS = 2


class WarmStartError(ValueError):
  """A --warm-start that cannot be used: one line naming the path and the fix."""


@dataclasses.dataclass(frozen=True)
class Transfer:
  """What a --warm-start run passes on: custom_config's entry, and the console line."""

  payload: dict
  line: str


def _payload(search: str, rows: List[dict], strip: str = '') -> dict:
  trials = [
    {'trial_id': r['trial'][len(strip) :], 'values': r['hyperparameters'], 'score': r['score']}
    for r in rows
  ]
  return {'source': search, 'trials': trials}


def _project(path: str, pipeline_name: str) -> str:
  from tfx_pipeline.local import report

  fix = 'name a search folder (<pipeline-root>/tuning/<pipeline>/<key>) or a pipeline root'
  if not os.path.isdir(path):
    raise WarmStartError(f'--warm-start {path}: no such folder; {fix}.')
  try:
    return report.find_project(path, pipeline_name)
  except FileNotFoundError:
    raise WarmStartError(f'--warm-start {path}: holds no search (no keras-tuner trials); {fix}.')


def _resumed(search: str, config, space) -> bool:
  """Whether `search` is the one this run resumes: this pipeline's, with this run's settings.

  So it is when --warm-start names this run's own pipeline root and the run
  is resumed: the search it started is now the latest.
  """
  from modules.search import search_space
  from modules.tuning import state as tuning_state

  base = tuning_state.base_dir(config.pipeline_root, config.pipeline_name)
  if os.path.dirname(os.path.abspath(search)) != os.path.abspath(base):
    return False
  recorded = tuning_state.read_description(search)
  options = json.loads(json.dumps(config.module.search_options()))
  return recorded.get('options') == options and recorded.get('space') == search_space.spec_json(
    space
  )


def custom_config(config) -> dict:
  """The pipeline's custom_config entry for a --warm-start search ({} for any other run)."""
  from modules.tuning import state as tuning_state

  if not (config.module.warm_start and config.tune):
    return {}
  return {tuning_state.WARM_TRIALS_KEY: load(config).payload}


def load(config) -> Optional[Transfer]:
  """The trials of `config.module.warm_start` that fit the run's space (None without the flag).

  Raises WarmStartError for a path with no search, a search with no completed
  trial, and a space none of them fits.
  """
  from modules.search import search_space
  from modules.tuning import warm_trials
  from tfx_pipeline.local import report

  path = config.module.warm_start
  if not path:
    return None
  project = _project(path, config.pipeline_name)
  search = os.path.dirname(project)
  space, _ = search_space.for_module(config.module)
  rows = report.load_trials(project)
  if _resumed(search, config, space):
    held = [r for r in rows if r['status'] == report.WARM]
    return Transfer(
      _payload(search, held, strip=warm_trials.PREFIX),
      f'warm start: {search} is the search this run resumes: it keeps its {len(held)} warm trials',
    )
  done = [r for r in rows if r['status'] in report.SCORED and r['score'] is not None]
  if not done:
    raise WarmStartError(
      f'--warm-start {path}: its search {search} has no completed trial to learn from; '
      'name a search that completed at least one, or leave --warm-start out.'
    )
  return _fitting(path, search, done, space)


def _fitting(path: str, search: str, done: List[dict], space) -> Transfer:
  from modules.tuning import space_fit

  hps = space.hyperparameters()
  kept, reasons = [], []
  for row in done:
    values, why = space_fit.fit(row['hyperparameters'], hps)
    if why is None:
      kept.append({**row, 'hyperparameters': values})
    elif why not in reasons:
      reasons.append(why)
  shown = '; '.join(reasons[:_REASONS]) + ('; ...' if len(reasons) > _REASONS else '')
  if not kept:
    raise WarmStartError(
      f'--warm-start {path}: none of the {len(done)} completed trials of {search} fits the '
      f'search space ({shown}); widen --search-space to take them, or leave --warm-start out.'
    )
  skipped = len(done) - len(kept)
  line = f'warm start: {len(kept)} of {len(done)} trials from {search}'
  if skipped:
    line += f' ({skipped} outside the new space: {shown})'
  return Transfer(_payload(search, kept), line)
