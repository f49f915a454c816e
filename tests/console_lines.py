"""What a default run may show on the console, line by line, and a terminal to replay it on.

`SHAPES` is every kind of line the quiet console prints: the data lines, the
search's size, one line per component, one per trial, the summary. Any other
line (a log record, a Keras epoch, keras-tuner's tables, a warning, a worker's
output) belongs in the run's log. `shape(line)` names a line's kind (None: no
kind); README's sample output is checked against a real run's by these names.
"""

import re
from typing import List, Optional

_PATH = r'\S+'
# An accuracy with its count and 95% interval: `0.780 (39/50, 95% CI 0.65-0.87)`.
_COUNTED = r'\d\.\d{3} \(\d+/\d+, 95% CI \d\.\d{2}-\d\.\d{2}\)'
SHAPES = {
  'log': rf'log: {_PATH}\.log',
  'search space': r'search space: .+',
  'data': r'data: .+',
  'backbone': r'backbone: .+',
  'data check': r'data check: .+',
  'beam': (
    r'beam: (one worker in this process|a worker (thread|process) per core) \([\d.]+ MB of data\)'
  ),
  'skipped record': r'  (skipped .+|\.\.\. and \d+ more, all in \S+)',  # --bad-images skip
  'search': (
    r'search: \w+, \d+ trials( \(the space has at most \d+ points: [^)]+\))?, '
    r'at most \d+ epochs in all(, \d+ at a time)?'
    r'(, median pruning after \d+ completed trials)?'
    r'; an epoch: (\d+ steps|a pass over the train split, at least \d+ steps)'
    r'(; each trial trains the head alone first \(--fine-tune\))?'
  ),
  'component starts': r'\[\d+/\d+\] \w+ \.\.\.',
  'component done': r'\[\d+/\d+\] \w+ (done in \d+\.\ds|cached)',
  'tuning': r'tuning: .+',
  'tuning budget': r'tuning budget of \S+ min spent: .+',
  'trial': (
    r'trial \d+/\d+: (\S+=\S+ )+score=\S+ best=\S+ \(\w+\) elapsed \w+'
    r'( \[([A-Z]+|pruned at epoch \d+)\])?( eta \w+)?'
  ),
  'finished': r'finished in \d+s( \(\d+ of \d+ components from cache\))?',
  'best hyperparameters': r'best hyperparameters: \{.+\}',
  'hyperparameters file': rf'  \({_PATH}/best_hyperparameters\.txt\)',
  'no tuning': r'hyperparameters: search space defaults \(no tuning\)',
  'accuracy': rf'(test|eval) accuracy: {_COUNTED}',
  'class accuracy': rf'  [^ ].*: ({_COUNTED}|-)',
  'optimism': (
    r'  measured on the eval split the search picked its best trial by'
    r'( \(best trial: \d\.\d{3}\))?: optimistic for new photos'
    r' \(add test shards for an unbiased figure\)'
  ),
  'best trial': (
    r"  best trial's eval accuracy: (\d\.\d{3}|-) "
    r'\(the split the search picked it by; the gap to test is its optimism\)'
  ),
  'calibration': (
    r'calibration: temperature (\d+\.\d{2}|-) \(fitted on \w+\); (test|eval) ECE '
    r'\d\.\d{3} -> \d\.\d{3} \(15 bins(, the photos it was fitted on)?\)'
  ),
  'saved model figures': (
    r'saved model: (test|eval) accuracy \d\.\d{3}, \d+\.\d MB, \d+\.\d ms/image on 1 thread'
  ),
  'tflite figures': (
    r'tflite int8: \d\.\d{3} \([+-]\d\.\d{3}\), \d+\.\d MB, \d+\.\d ms/image on 1 thread'
    r'(; not pushed: \d\.\d{3} below the SavedModel, more than --max-tflite-drop \S+)?'
  ),
  'pushed model': rf'pushed model: {_PATH}',
  'not pushed': rf'model not pushed: .+; TFMA results in {_PATH}',
  'confusion matrix': rf'confusion matrix: {_PATH}\.png',
  'reliability diagram': rf'reliability diagram: {_PATH}\.png',
  'tuning report': (
    r'tuning report: \d+ of \d+ trials completed(, \d+ of them pruned)? \(\* best\)'
  ),
  'report header': r'  trial  .+  status',
  'report row': r'  \d+( \*)? .+ (COMPLETED|PRUNED|FAILED|INVALID|RUNNING|IDLE|STOPPED)',
  'report files': (
    rf'  \({_PATH}: trials\.txt/\.csv/\.json, PNG plots; tensorboard --logdir {_PATH}\)'
  ),
  'lost trial': r'  lost with a worker: .+',
  'interrupted': r'interrupted: rerun the same command to resume',
}
_COMPILED = {name: re.compile(pattern) for name, pattern in SHAPES.items()}


def shape(line: str) -> Optional[str]:
  """The kind of console line `line` is, or None."""
  for name, pattern in _COMPILED.items():
    if pattern.fullmatch(line):
      return name
  return None


def strays(lines: List[str]) -> List[str]:
  """The lines that no console line looks like."""
  return [line for line in lines if shape(line) is None]


def screen(raw: str) -> List[str]:
  """The rows a terminal shows after `raw`: with carriage returns, line erases and cursor-ups."""
  rows, row, col = [''], 0, 0
  for token in re.findall(r'\x1b\[1A|\x1b\[K|\r|\n|[^\x1b\r\n]+', raw):
    if token == '\n':
      row, col = row + 1, 0
      if row == len(rows):
        rows.append('')
    elif token == '\r':
      col = 0
    elif token == '\x1b[K':
      rows[row] = rows[row][:col]
    elif token == '\x1b[1A':
      row = max(row - 1, 0)
    else:
      text = rows[row].ljust(col)
      rows[row] = text[:col] + token + text[col + len(token) :]
      col += len(token)
  return rows[:-1] if rows and rows[-1] == '' else rows
