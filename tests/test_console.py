"""The quiet console, the run lock and Ctrl-C handling, each on its own (no pipeline run)."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO
from tests.console_lines import screen, shape, strays
from tfx_pipeline.local import interrupt as interrupt_module
from tfx_pipeline.local import run_lock
from tfx_pipeline.local.console_log import Screen


class FakeTerminal(io.StringIO):
  def isatty(self):
    return True


def test_a_terminal_shows_lines_with_the_status_below_them():
  terminal = FakeTerminal()
  out = Screen(terminal)
  out.line('[7/10] Tuner ...')
  out.status('', 'trial 1/5 epoch 1/2 val_accuracy - (1s)')
  out.status('', 'trial 1/5 epoch 2/2 val_accuracy 0.600 (3s)')
  assert screen(terminal.getvalue()) == [
    '[7/10] Tuner ...',
    'trial 1/5 epoch 2/2 val_accuracy 0.600 (3s)',
  ]
  out.status('', None)
  out.line('trial 1/5: units=64 score=0.6000 best=0.6000 (3s) elapsed 3s eta 9s')
  out.status('', 'trial 2/5 epoch 1/2 val_accuracy - (0s)')
  assert screen(terminal.getvalue()) == [
    '[7/10] Tuner ...',
    'trial 1/5: units=64 score=0.6000 best=0.6000 (3s) elapsed 3s eta 9s',
    'trial 2/5 epoch 1/2 val_accuracy - (0s)',
  ]
  out.clear()
  assert screen(terminal.getvalue())[-1].startswith('trial 1/5: ')


def test_parallel_workers_get_a_status_row_each():
  terminal = FakeTerminal()
  out = Screen(terminal)
  out.status('tuner0', '[tuner0] trial 1/4 epoch 1/2')
  out.status('tuner1', '[tuner1] trial 2/4 epoch 1/2')
  out.status('tuner0', '[tuner0] trial 1/4 epoch 2/2')
  out.line('trial 1/4: units=64 score=0.5000 best=0.5000 (2s) elapsed 2s')
  out.status('tuner0', None)
  assert screen(terminal.getvalue()) == [
    'trial 1/4: units=64 score=0.5000 best=0.5000 (2s) elapsed 2s',
    '[tuner1] trial 2/4 epoch 1/2',
  ]


def test_a_status_wider_than_the_terminal_is_cut_to_one_row():
  terminal = FakeTerminal()
  out = Screen(terminal)
  out.status('', 'x' * 500)
  (row,) = screen(terminal.getvalue())
  assert len(row) < 80 and row.endswith('...')  # 80: the width where none is known.


def test_a_pipe_gets_the_lines_alone_without_control_characters():
  pipe = io.StringIO()
  out = Screen(pipe)
  out.line('[7/10] Tuner ...')
  out.status('', 'trial 1/5 epoch 1/2')
  out.line('[7/10] Tuner done in 3.0s')
  out.clear()
  assert pipe.getvalue() == '[7/10] Tuner ...\n[7/10] Tuner done in 3.0s\n'


def test_console_shapes_know_the_summary_and_nothing_else():
  for line in (
    'test accuracy: 0.800 (8/10, 95% CI 0.49-0.94)',
    "  best trial's eval accuracy: 0.900 (the split the search picked it by; the gap to test "
    'is its optimism)',
    'eval accuracy: 0.800 (8/10, 95% CI 0.49-0.94)',
    '  measured on the eval split the search picked its best trial by (best trial: 0.900): '
    'optimistic for new photos (add test shards for an unbiased figure)',
    '[6/9] Tuner done in 12.3s',
    'trial 3/10: units=192 optimizer=adam score=0.6250 best=0.7500 (41s) elapsed 2m05s eta 4m10s',
    'pushed model: pipeline_output/serving_model/flower-tuner/1795848622',
    "model not pushed: test accuracy 0.810 is below the serving model's 0.860 "
    '(--max-accuracy-drop); TFMA results in pipeline_output/Evaluator/evaluation/18',
    '  daisy: 1.000 (2/2, 95% CI 0.34-1.00)',
  ):
    assert shape(line), line
  noise = [
    'Epoch 1/8',
    '50/50 - 1s - 12ms/step - accuracy: 0.6000 - loss: 1.2148 - val_accuracy: 0.9400',
    'Search: Running Trial #1',
    'I0000 00:00:1.0 tensorflow/core/util/port.cc:113] oneDNN custom operations are on.',
    'WARNING:absl:Fail to find plots for model name',
    '[tuner0] trial 1/?: units=64 score=0.6000 best=0.6000 (3s) elapsed 3s',
  ]
  assert strays(noise) == noise


# The run lock --------------------------------------------------------------------


def _hold_in_another_process(root, seconds):
  """A process that holds `root` for `seconds`; returns once it holds it."""
  code = (
    'import sys, time; from tfx_pipeline.local import run_lock\n'
    f'with run_lock.hold({str(root)!r}):\n'
    "  print('held', flush=True); time.sleep(float(sys.argv[1]))\n"
  )
  process = subprocess.Popen(
    [sys.executable, '-c', code, str(seconds), '--a-flag'],
    cwd=REPO,
    stdout=subprocess.PIPE,
    text=True,
  )
  assert process.stdout.readline().strip() == 'held'
  return process


def test_a_second_run_on_a_root_is_refused_naming_the_first(tmp_path):
  root = tmp_path / 'root'
  holder = _hold_in_another_process(root, 60)
  try:
    for refuse in (run_lock.refuse_if_held, lambda r: run_lock.hold(r).__enter__()):
      with pytest.raises(run_lock.RunLockError) as refused:
        refuse(str(root))
      message = str(refused.value)
      assert message.startswith(f'--pipeline-root {root} is in use by process {holder.pid} ')
      assert '--a-flag' in message and 'pass another --pipeline-root' in message
  finally:
    holder.kill()
    holder.wait()
  # The kernel released the killed holder's lock: its stale file is taken over.
  assert json.loads((root / run_lock.LOCK_FILE).read_text())['pid'] == holder.pid
  with run_lock.hold(str(root)):
    assert json.loads((root / run_lock.LOCK_FILE).read_text())['pid'] == os.getpid()
    with run_lock.hold(str(root)):  # The same process again: reentrant.
      pass
  assert (root / run_lock.LOCK_FILE).read_text() == ''  # Released: no holder named.


def test_checking_for_a_holder_creates_nothing(tmp_path):
  run_lock.refuse_if_held(str(tmp_path / 'new' / 'root'))
  assert not (tmp_path / 'new').exists()


# Ctrl-C ---------------------------------------------------------------------------


def _idle(seconds=5.0):
  deadline = time.monotonic() + seconds
  while time.monotonic() < deadline:
    time.sleep(0.01)
  pytest.fail('no KeyboardInterrupt came')


def test_a_ctrl_c_lost_in_a_finalizer_is_raised_again():
  """What happened before: the KeyboardInterrupt landed in a weakref callback and was lost."""
  from modules.runtime import stop

  with interrupt_module.Interrupt() as interrupt:
    interrupt.defer()  # The first raise does not come now: the lost one is simulated.
    os.kill(os.getpid(), signal.SIGINT)
    interrupt.release()
    assert interrupt.requested and stop.requested()

    class Unraisable:
      exc_type = KeyboardInterrupt
      exc_value = KeyboardInterrupt()
      exc_traceback = None
      err_msg = 'Exception ignored in'
      object = None

    interrupt._previous_hook = lambda unraisable: None
    interrupt._on_unraisable(Unraisable())
    with pytest.raises(KeyboardInterrupt):
      _idle()
    interrupt.stopped = True
  assert not stop.requested()


def test_a_ctrl_c_during_a_push_takes_effect_once_it_is_done():
  with interrupt_module.Interrupt() as interrupt:
    interrupt.defer()
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.1)  # Not raised while deferred.
    with pytest.raises(KeyboardInterrupt):
      interrupt.resume()
    interrupt.stopped = True
