"""The chief of a parallel search: serves keras-tuner's oracle to the workers over loopback gRPC.

`tfx_pipeline.parallel.component`'s executor starts it. It is keras-tuner's own
`OracleServicer` (the one `tuner.search()` serves when KERASTUNER_TUNER_ID is
'chief') on a free loopback port, in the executor's process, so the executor
can also see the oracle: which worker holds which trial, when every trial is
done (keras-tuner's own exit test), and end the trial of a worker that died.
keras-tuner's `start_server` cannot be told a worker died: it waits forever
for the dead worker's trial.
"""
from __future__ import annotations

from concurrent import futures
from typing import Optional

import grpc
import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief

LOOPBACK = '127.0.0.1'


@keras_tuner.synchronized
def _end_lost_trial(oracle, tuner_id: str, message: str) -> Optional[str]:
  # Under the oracle's lock, like the servicer's own calls.
  trial = oracle.ongoing_trials.get(tuner_id)
  if trial is not None:
    trial.status = keras_tuner.engine.trial.TrialStatus.FAILED
    trial.message = message
    oracle.end_trial(trial)
  # The worker will never ask for another trial; without this the chief
  # would wait for it (oracle_chief.exit_chief).
  oracle.tuner_ids.discard(tuner_id)
  return trial.trial_id if trial is not None else None


@keras_tuner.synchronized
def _ongoing_trial_id(oracle, tuner_id: str) -> Optional[str]:
  trial = oracle.ongoing_trials.get(tuner_id)
  return trial.trial_id if trial is not None else None


@keras_tuner.synchronized
def _stop_if_spent(oracle, budget) -> Optional[str]:
  return budget.stop_if_spent(oracle)


class OracleServer:
  """keras-tuner's oracle servicer on a free loopback port."""

  def __init__(self, oracle):
    self.oracle = oracle
    self._servicer = oracle_chief.OracleServicer(oracle)
    # One RPC at a time, as keras-tuner's start_server does.
    self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    protos.get_service_grpc().add_OracleServicer_to_server(self._servicer, self._server)
    # Port 0: the OS picks a free port, so concurrent searches never collide.
    self.port = self._server.add_insecure_port(f'{LOOPBACK}:0')
    self.address = (LOOPBACK, self.port)

  def start(self) -> 'OracleServer':
    # Trials and their ids come from the oracle's saved state when resuming.
    self.oracle.save()
    self._server.start()
    return self

  def stop(self) -> None:
    self._server.stop(grace=None)

  def finished(self) -> bool:
    """keras-tuner's own test: a worker was told to stop, and no worker holds a trial."""
    return self._servicer.stop_triggered and oracle_chief.exit_chief(self.oracle)

  @property
  def stopping(self) -> bool:
    """True once the oracle has no new trial left to hand out."""
    return self._servicer.stop_triggered

  def ongoing_trial(self, tuner_id: str) -> Optional[str]:
    """The id of the trial worker `tuner_id` is running, if any."""
    return _ongoing_trial_id(self.oracle, tuner_id)

  def end_lost_trial(self, tuner_id: str, message: str) -> Optional[str]:
    """Ends the trial of a dead worker as FAILED and forgets the worker; returns the trial id."""
    return _end_lost_trial(self.oracle, tuner_id, message)

  def stop_if_spent(self, budget) -> Optional[str]:
    """The sequential search's budget check (modules.tuning.hooks), under the oracle's lock."""
    return _stop_if_spent(self.oracle, budget)
