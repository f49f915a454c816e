"""The warm-start server (tfx_pipeline/warm_start.py starts it): fork, then become the command.

`python -m tfx_pipeline.warm_server ADDRESS [MODULE...]` imports the modules,
prints `ready`, and forks a child for each request on the socket at ADDRESS.
The child takes the requester's stdout and stderr, working directory,
environment, `sys.path` and `sys.argv`, forgets the server's own copy of this
project, runs the module or script as `__main__`, and exits as Python would,
without tearing the interpreter down. The server runs in a session of its own
(no terminal's Ctrl-C reaches it); each child is a process group in it, or
joins the one its requester names. The server reports each child's exit code
on the request's connection; on SIGTERM it stops every child and its group.
"""

from __future__ import annotations

import atexit
import importlib
import io
import json
import os
import runpy
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Dict, List

_MAX_REQUEST = 1 << 20


def _serve(address: str) -> dict:
  """Forks a child per request; returns the request in the child, never in the server."""
  listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
  listener.bind(address)
  listener.listen(16)
  children: Dict[int, socket.socket] = {}

  def stop(*_):
    _stop_groups(list(children))
    os._exit(0)

  signal.signal(signal.SIGTERM, stop)
  print('ready', flush=True)
  while True:
    listener.settimeout(0.2)
    try:
      connection, _ = listener.accept()
    except socket.timeout:
      connection = None
    if connection is not None:
      connection.settimeout(None)
      message, fds, _, _ = socket.recv_fds(connection, _MAX_REQUEST, 2)
      sys.stdout.flush()
      sys.stderr.flush()
      pid = os.fork()
      if pid == 0:
        listener.close()
        for other in children.values():
          other.close()
        request = json.loads(message)
        request['fds'] = fds
        _join_group(request.get('group'))
        connection.sendall(f'{os.getpid()}\n'.encode())
        connection.close()
        return request
      for fd in fds:
        os.close(fd)
      children[pid] = connection
    _reap(children)


def _join_group(group) -> None:
  """Its own process group, or the requester's `group`, before the requester learns its pid.

  So that signalling its group never reaches the server's. A process the
  requester starts in its own group is stopped with it, as a `subprocess`
  child would be; a group in another session cannot be joined (EPERM).
  """
  try:
    os.setpgid(0, group or 0)
  except OSError:
    os.setpgid(0, 0)


def _reap(children: Dict[int, socket.socket]) -> None:
  while children:
    try:
      pid, status = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
      return
    if pid == 0:
      return
    connection = children.pop(pid, None)
    if connection is not None:
      try:
        connection.sendall(str(os.waitstatus_to_exitcode(status)).encode())
      except OSError:
        pass  # The requester is gone.
      connection.close()


def _stop_groups(pids: List[int], grace: float = 5.0) -> None:
  """TERM to each child's process group; KILL to what is left of them after `grace` seconds."""
  for pid in pids:
    _signal_group(pid, signal.SIGTERM)
  alive, deadline = set(pids), time.monotonic() + grace
  while alive and time.monotonic() < deadline:
    for pid in list(alive):
      try:
        ended = os.waitpid(pid, os.WNOHANG)[0] == pid
      except ChildProcessError:
        ended = True
      if ended:
        alive.discard(pid)
    time.sleep(0.05)
  for pid in pids:  # The processes a child started, and a child that ignored TERM.
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
  """`sig` to child `pid` and to the group it leads (none, if it joined another)."""
  for send in (os.kill, os.killpg):
    try:
      send(pid, sig)
    except (ProcessLookupError, PermissionError):
      pass


def _become(request: dict, site: List[str], project: str) -> None:
  """Turns the forked child into the process `python ARGV...` would have started."""
  for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
    signal.signal(sig, signal.SIG_DFL)
  stdout, stderr = request['fds']
  os.dup2(stdout, 1)
  os.dup2(stderr, 2)
  for fd in {stdout, stderr}:
    os.close(fd)
  os.chdir(request['cwd'])
  os.environ.clear()
  os.environ.update(request['env'])
  _open_streams()
  argv = request['argv']
  # sys.path[0] as Python sets it: the working directory for -m, the script's folder otherwise.
  first = request['cwd'] if argv[0] == '-m' else os.path.dirname(os.path.abspath(argv[0]))
  pythonpath = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  sys.path[:] = [first, *pythonpath, *site]
  # This project's packages are imported afresh, from where the command finds them
  # (in a rehearsal, the image stand-in): forget the server's own, but not the
  # packages installed in a virtualenv inside the project.
  installed = tuple(p + os.sep for p in site)
  for name, module in list(sys.modules.items()):
    path = getattr(module, '__file__', None) or ''
    if name != '__main__' and path.startswith(project) and not path.startswith(installed):
      del sys.modules[name]
  sys.argv = argv[1:] if argv[0] == '-m' else list(argv)


def _open_streams() -> None:
  """sys.stdout and sys.stderr as Python makes them at start-up, for the new fds 1 and 2.

  Line-buffered on a terminal (and stderr always), unbuffered under
  PYTHONUNBUFFERED: the server's own were made for its pipes.
  """
  unbuffered = bool(os.environ.get('PYTHONUNBUFFERED'))
  for fd, name in ((1, 'stdout'), (2, 'stderr')):
    old = getattr(sys, name)
    raw = io.FileIO(fd, 'w', closefd=False)
    stream = io.TextIOWrapper(
      raw if unbuffered else io.BufferedWriter(raw),
      encoding=old.encoding,
      errors=old.errors,
      line_buffering=name == 'stderr' or os.isatty(fd),
      write_through=unbuffered,
    )
    setattr(sys, name, stream)
    setattr(sys, f'__{name}__', stream)


def _run(argv: List[str]) -> None:
  if argv[0] == '-m':
    runpy.run_module(argv[1], run_name='__main__', alter_sys=True)
  else:
    runpy.run_path(argv[0], run_name='__main__')


def _exit_code(stop: SystemExit) -> int:
  """The exit code Python gives a SystemExit (a message is printed, and is 1)."""
  if stop.code is None or isinstance(stop.code, int):
    return stop.code or 0
  print(stop.code, file=sys.stderr)
  return 1


def _run_and_exit(argv: List[str]) -> None:
  """Runs the command, then ends the child as Python would, less the interpreter's teardown.

  As Python exits: the exit code it gives (SystemExit's; 1 after a traceback;
  SIGINT after an uncaught KeyboardInterrupt), other threads joined, atexit
  handlers run, streams flushed. Then `os._exit`, as a forked multiprocessing
  child ends: tearing down an interpreter with TensorFlow and TFX loaded frees
  their objects one by one, about 2 s of CPU in every process, for nothing.
  """
  code, interrupted = 0, False
  try:
    _run(argv)
  except SystemExit as stop:
    code = _exit_code(stop)
  except KeyboardInterrupt:
    traceback.print_exc()
    interrupted = True
  except BaseException:
    sys.excepthook(*sys.exc_info())
    code = 1
  for thread in threading.enumerate():
    if thread is not threading.current_thread() and not thread.daemon:
      thread.join()
  atexit._run_exitfuncs()
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass  # Closed, or its reader is gone: Python's own exit ignores that too.
  if interrupted:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
  os._exit(code)


def main(argv: List[str]) -> None:
  """`python -m tfx_pipeline.warm_start ADDRESS [MODULE...]`: imports the modules, then serves."""
  address, preload = argv[0], argv[1:]
  project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  pythonpath = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  site = [p for p in sys.path[1:] if p and p not in pythonpath]
  for name in preload:
    importlib.import_module(name)
  request = _serve(address)
  _become(request, site, project + os.sep)
  _run_and_exit(request['argv'])


if __name__ == '__main__':
  main(sys.argv[1:])
