"""The tuning report's PNG plots (tfx_pipeline/local/report.py): score by trial and by value."""

from __future__ import annotations

import os
from typing import List

from modules.search.search_space import OBJECTIVE


def plot(rows: List[dict], names: List[str], out_dir: str) -> List[str]:
  """score_by_trial.png and score_by_hyperparameter.png of `rows`; their paths."""
  import matplotlib

  matplotlib.use('Agg')  # Files only: no display on servers.
  import matplotlib.pyplot as plt

  paths = []
  scored = [r for r in rows if r['score'] is not None]
  # Score per trial at the cumulative epochs when it ended, and the best so far.
  fig, ax = plt.subplots(figsize=(7, 4))
  cumulative, xs, ys, best_x, best_y, best = 0, [], [], [], [], None
  for row in rows:
    cumulative += row['epochs'] or 0
    if row['score'] is None:
      continue
    xs.append(cumulative)
    ys.append(row['score'])
    best = row['score'] if best is None else max(best, row['score'])
    best_x.append(cumulative)
    best_y.append(best)
  ax.scatter(xs, ys, label='trial score')
  ax.step(best_x, best_y, where='post', color='tab:orange', label='best so far')
  ax.set_xlabel('epochs trained in all')
  ax.set_ylabel(OBJECTIVE)
  ax.set_title(f'{len(rows)} trials')
  ax.legend(loc='lower right')
  fig.tight_layout()
  paths.append(os.path.join(out_dir, 'score_by_trial.png'))
  fig.savefig(paths[-1])
  plt.close(fig)

  if names:
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
      pairs = [
        (r['hyperparameters'][name], r['score']) for r in scored if name in r['hyperparameters']
      ]
      # Categories and log-spaced choices read best as evenly spaced labels.
      labels = sorted({str(v) for v, _ in pairs}, key=sort_key)
      ax.scatter([labels.index(str(v)) for v, _ in pairs], [s for _, s in pairs])
      ax.set_xticks(range(len(labels)))
      ax.set_xticklabels(labels, rotation=30)
      ax.set_xlabel(name)
      ax.set_ylabel(OBJECTIVE)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, 'score_by_hyperparameter.png'))
    fig.savefig(paths[-1])
    plt.close(fig)
  return paths


def sort_key(text: str):
  try:
    return (0, float(text), '')
  except ValueError:
    return (1, 0.0, text)
