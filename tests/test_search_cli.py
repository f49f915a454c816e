"""--tuner tpe from the CLI as a user reaches it, on one pipeline root: a search (up to the
Tuner), a second one warm-started from it, and a two-worker search on accuracy and latency
that Ctrl-C stops and the same command resumes. The runs after the first take the data's
components from TFX's cache."""

import os
import re
import signal

import pytest

from modules.tuning import pareto
from tests import tiny
from tests.runs import popen, run_local
from tfx_pipeline.local import cli, report
from tfx_pipeline.local import runner as local_runner
from tfx_pipeline.local.interrupt import EXIT_CODE, INTERRUPTED

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> str:
  return str(tmp_path_factory.mktemp('search_cli') / 'root')


FIRST_SPACE = 'optimizer: {type: choice, values: [sgd, adam], default: adam}\n'
# Narrowed to adam (sgd's trial does not fit), with a learning rate to search beside it.
SECOND_SPACE = """
optimizer: {type: fixed, value: adam}
learning_rate: {type: choice, values: [1.0e-3, 1.0e-2], default: 1.0e-3}
"""


def test_a_second_search_starts_from_the_first(root, tiny_data, tmp_path, capsys):
  """Both on one pipeline root: the second's --warm-start names the root (its latest search)."""

  def run(name, text, *extra):
    space = tmp_path / f'{name}.yaml'
    space.write_text(text)
    argv = [
      *tiny.flags(tuner='tpe', max_epochs=1, epochs=1, search_space=str(space)),
      *('--data-root', tiny_data, '--pipeline-root', root),
      *('--accuracy-threshold', '0', *extra),
    ]
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, out + err
    return out.splitlines()

  # The search to start from; what the Trainer would make of it is not this test's subject.
  first_space = tmp_path / 'first.yaml'
  first_space.write_text(FIRST_SPACE)
  config = tiny.pipeline(
    tiny_data, root, tuner='tpe', max_epochs=1, epochs=1, search_space=str(first_space)
  )
  local_runner.run(config, echo=lambda line: None, stop_after='Tuner')
  first = report.find_project(root)
  lines = run('second', SECOND_SPACE, '--warm-start', root)
  warm = [line for line in lines if line.startswith('warm start:')]
  assert warm == [
    f'warm start: 1 of 2 trials from {os.path.dirname(first)} (1 outside the new space: '
    'optimizer sgd != fixed adam)'
  ]
  # The narrowed space's other point is the search's own trial; the warm one is not re-run.
  rows = [line.split() for line in lines if line.rstrip().endswith(('COMPLETED', 'WARM'))]
  assert [(r[0], r[-1]) for r in rows] in (
    [('0', 'COMPLETED'), (warm_id, 'WARM')] for warm_id in ('warm_0', 'warm_1')
  ), lines
  assert any(
    line.startswith('tuning report: 1 of 1 trials completed (* best); 1 WARM') for line in lines
  )
  # The report command shows them the same way, from the pipeline root (its latest search).
  assert cli.main(['report', root]) == 0
  shown = capsys.readouterr().out
  assert ' WARM' in shown and '\n  0 *' in shown, shown
  print('\n'.join(lines) + '\n' + shown)  # The console, for -rP.


def _stopped_at_the_first_scored_trial(flags) -> list:
  """run_local.py *flags, sent SIGINT once a trial has a score; the lines it printed."""
  process = popen(['run_local.py', *flags])
  lines, sent = [], False
  try:
    for line in process.stdout:
      lines.append(line.rstrip('\n'))
      if not sent and lines[-1].startswith('trial ') and ' score=' in lines[-1]:
        process.send_signal(signal.SIGINT)
        sent = True
    process.wait(timeout=600)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
  assert process.returncode == EXIT_CODE and lines[-1] == INTERRUPTED, '\n'.join(lines)
  return lines


def test_a_parallel_search_resumes_after_ctrl_c_and_trains_the_chosen_trial(root, tiny_data):
  """--tuner tpe on two objectives with a latency limit, two trials at a time, stopped by Ctrl-C
  after its first scored trial; the same command finishes the search and trains its choice."""
  flags = [
    *tiny.flags(tuner='tpe', max_trials=4, max_epochs=1, epochs=1),
    *('--objectives', 'val_accuracy,latency_ms', '--max-latency-ms', '1000'),
    *('--parallel-trials', '2', '--data-root', tiny_data, '--pipeline-root', root),
    *('--accuracy-threshold', '0'),
  ]
  stopped = _stopped_at_the_first_scored_trial(flags)
  assert not any(line.startswith('chosen: ') for line in stopped), stopped
  done = run_local(*flags)
  assert done.rc == 0, done.out + done.err
  lines = done.lines
  (resumed,) = [line for line in lines if line.startswith('tuning: resuming')]
  assert int(re.search(r'\((\d+) trials already done\)', resumed).group(1)) >= 1, resumed
  chosen = [line for line in lines if line.startswith('chosen: trial ')]
  assert len(chosen) == 1, lines
  assert chosen[0].endswith('on the front within --max-latency-ms 1000)'), chosen
  assert any(line.startswith('Pareto front: ') for line in lines), lines
  # The run's own report drew the front.
  project = report.find_project(root)
  assert os.path.getsize(os.path.join(os.path.dirname(project), 'report', 'pareto_front.png'))
  written = report.write(root)
  # Every trial once, across both runs and both workers, each with its latency.
  assert sorted(r['trial'] for r in written['rows']) == ['0', '1', '2', '3'], written['rows']
  latencies = [r['figures'][pareto.LATENCY] for r in written['rows']]
  assert all(0.0 < ms < 1000.0 for ms in latencies), latencies
  front = written['front']
  assert front['chosen'] in front['front'] and front['line'] == chosen[0]
  # The trials table marks the chosen trial (not the most accurate) and shows each one's latency.
  assert any(re.match(r'tuning report: 4 of 4 trials completed \(\* chosen\)$', x) for x in lines)
  assert any(x.startswith('  trial ') and ' score  latency_ms ' in x for x in lines), lines
  assert {x.split()[0] for x in lines if re.match(r'  \d+ \*', x)} == {front['chosen']}, lines
  # The Trainer trained the chosen trial: the Tuner wrote its values as the best.
  row = next(r for r in written['rows'] if r['trial'] == front['chosen'])
  best = next(line for line in lines if line.startswith('best hyperparameters: '))
  assert all(f"'{k}': {v!r}" in best for k, v in row['hyperparameters'].items()), (best, row)
  print('\n'.join(stopped + lines))  # The consoles, for -rP.
