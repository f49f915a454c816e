"""Every command README.md shows runs as shown and exits 0.

The commands come from README.md's fenced bash blocks, so an example is tested
as soon as it is written. Each runs from the repository root with this
interpreter, with tiny sizes appended where the command takes them, its own
pipeline root or output folder, and placeholders filled from an earlier step:
`pipeline_output/...` is the shared tuned run's root, a `<name>` path part is
the newest entry of its folder there (`<id>`: the newest Tuner output),
`/path/to/...` is a folder an earlier README command writes (its `--out`) or,
for photos, a generated photo folder, and a missing `*.jpg` is a generated
photo. A command the test cannot classify fails; the few that cannot run here
are skipped with the reason.
"""

import concurrent.futures
import dataclasses
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from tests import runs, tiny
from tests.conftest import REPO

README = Path(REPO) / 'README.md'
PYTHONS = ('.venv/bin/python', 'python', 'python3')
# Appended to pipeline runs: small and fast whatever the defaults (the later flag wins);
# one epoch and one trial, as the commands are checked for running, not for what they learn.
TINY_RUN = tiny.flags(max_epochs=1, epochs=1, max_trials=1)
# The tuned-root run that pushes what `predict --tflite` reads keeps the TFLite step
# (`Workspace.with_tflite`); the others skip its ~20 s.
TINY_RUN_WITH_TFLITE = tiny.flags(tflite=True, max_epochs=1, epochs=1, max_trials=1)
# Appended only where the command does not set the flag itself.
# The default backbone is kept: it is what the README's commands run, and needs no download.
# Push even a 1-epoch model, and one worse than the last, for predict.
RUN_DEFAULTS = {'--accuracy-threshold': '0', '--max-accuracy-drop': '1'}
# Documented, not run by the suite, and why. Checked on the command's first words.
NOT_RUN = {
  ('make',): 'make installs into .venv; `make run` is run_local.py and `make test` this suite',
  ('gcloud',): 'needs a Google Cloud project and credentials',
  ('docker',): 'builds and pushes the Vertex AI image: needs Docker and a registry',
  ('-m', 'bench.run'): 'the benchmark: minutes of timed runs on purpose',
}
OUTPUT_FLAGS = ('--out', '--output')


@dataclasses.dataclass(frozen=True)
class Command:
  line: int  # Where it starts in README.md.
  text: str
  words: List[str]

  @property
  def id(self) -> str:
    shown = self.text.replace('.venv/bin/python ', '')
    return f'L{self.line}: {shown[:70]}'

  def value(self, flag: str) -> Optional[str]:
    for i, word in enumerate(self.words):
      if word == flag and i + 1 < len(self.words):
        return self.words[i + 1]
      if word.startswith(flag + '='):
        return word.split('=', 1)[1]
    return None

  def has(self, flag: str) -> bool:
    return any(w == flag or w.startswith(flag + '=') for w in self.words)


def readme_commands(path=README) -> List[Command]:
  """Commands in the fenced bash blocks of `path`: continuation lines joined, comments dropped."""
  commands, in_bash, pending, start = [], False, '', 0
  for number, line in enumerate(path.read_text().splitlines(), 1):
    fence = line.strip()
    if fence.startswith('```'):
      in_bash = not in_bash and fence[3:].strip() in ('bash', 'sh', 'shell')
      continue
    if not in_bash:
      continue
    if not pending:
      start = number
    pending += line
    if line.rstrip().endswith('\\'):
      pending = pending.rstrip()[:-1] + ' '
      continue
    words = shlex.split(pending, comments=True)
    if words:
      commands.append(Command(start, ' '.join(words), words))
    pending = ''
  return commands


def classify(command: Command):
  """('run', kind) for the kinds the suite runs, or ('skip', why); None if it cannot tell."""
  words = command.words
  after_python = words[1:] if words[0] in PYTHONS else words
  for prefix, why in NOT_RUN.items():
    if tuple(after_python[: len(prefix)]) == prefix:
      return 'skip', why
  if words[0] not in PYTHONS or len(words) < 2:
    return None
  script, rest = words[1], words[2:]
  if script == 'run_local.py':
    if rest[:1] in (['predict'], ['report']):
      return 'run', rest[0]
    return 'run', 'pipeline'
  if script == 'run_vertex.py':
    if command.has('--compile-only'):
      return 'run', 'compile'
    if command.has('--submit'):
      return 'skip', 'starts a run on Vertex AI: needs a Google Cloud project and credentials'
    if command.has('--rehearse'):
      return 'skip', 'a whole rehearsal: tests/test_rehearsal.py runs it from the CLI at tiny sizes'
  if words[1:3] == ['-m', 'data.convert']:
    if command.has('--download'):
      return 'skip', 'downloads flower_photos.tgz (230 MB) from the network'
    return 'run', 'convert'
  return None


COMMANDS = readme_commands()


def _photo(path: Path) -> Path:
  """A small JPEG: any decodable image will do for predict."""
  import numpy as np
  from PIL import Image

  path.parent.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(sum(path.name.encode()))
  pixels = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path, format='JPEG')
  return path


def _newest(folder: Path) -> str:
  entries = [e for e in os.listdir(folder) if not e.startswith('.')] if folder.is_dir() else []
  if not entries:
    pytest.fail(f'{folder}: empty or missing, so a README placeholder there cannot be filled')
  if all(e.isdigit() for e in entries):
    return max(entries, key=int)
  return max(entries, key=lambda e: os.path.getmtime(folder / e))


class Workspace:
  """Runs README commands once each, in their own folders under `tmp`, filling placeholders."""

  def __init__(self, tmp: Path):
    self.tmp = tmp
    self.tuned_root = tmp / 'tuned'  # The one tuned run every pipeline_output/... reads.
    self.results: Dict[int, concurrent.futures.Future] = {}
    self.argvs: Dict[int, List[str]] = {}
    self._lock = threading.Lock()
    self._runners: Dict[int, int] = {}  # Command line -> the thread that runs it.
    self._processes: list = []
    self._closing = False

  def start_independent(self, selected: List[Command]) -> None:
    """Runs, in the background, the selected commands that need nothing from the tuned run.

    Each is a process of its own (mostly one busy core), so on two cores they
    overlap with the tuned run's chain; a test that reaches one waits for it.
    """

    def independent(c):
      kind = classify(c)
      return (
        kind == ('run', 'compile')
        or kind == ('run', 'convert')
        or (kind == ('run', 'pipeline') and c.has('--data-root'))
      )

    commands = [c for c in selected if independent(c)]

    def run_all():
      for command in commands:
        if self._closing:
          return
        try:
          self.run(command)
        except BaseException:  # Kept in the command's result; its test reports it.
          pass

    threading.Thread(target=run_all, daemon=True).start()

  def close(self) -> None:
    """Stops what still runs once the tests are done (after -x, say)."""
    self._closing = True
    for process in self._processes:
      process.kill()

  # Placeholders -----------------------------------------------------------

  def _tuned(self) -> Path:
    if not (self.tuned_root / 'Tuner').is_dir():
      tuned = [
        c
        for c in COMMANDS
        if classify(c) == ('run', 'pipeline')
        and not c.has('--no-tune')
        and not c.has('--data-root')
      ]
      if not tuned:
        pytest.fail('README.md shows no tuned run on the sample to fill pipeline_output/ from')
      self.expect_success(tuned[0])
    return self.tuned_root

  def _made_by_earlier_step(self, placeholder: str, path: Path) -> None:
    makers = [c for c in COMMANDS if any(c.value(f) == placeholder for f in OUTPUT_FLAGS)]
    if makers:
      self.expect_success(makers[0])
    elif 'photos' in placeholder:
      from tests.test_convert import make_photo_folder

      make_photo_folder(path, per_class=12)
    else:
      pytest.fail(f'{placeholder}: no README command writes it (--out), so it cannot be filled')

  def fill(self, word: str, output: bool = False) -> str:
    if word.startswith('--') and '=' in word:
      flag, value = word.split('=', 1)
      return f'{flag}={self.fill(value, flag in OUTPUT_FLAGS)}'
    if word == 'pipeline_output' or word.startswith('pipeline_output/'):
      path = self._tuned()
      for part in Path(word).parts[1:]:
        path = path / (_newest(path) if re.fullmatch(r'<\w+>', part) else part)
      return str(path)
    if word.startswith('/path/to/'):
      path = self.tmp / 'path_to' / word[len('/path/to/') :]
      if not output and not path.exists():
        self._made_by_earlier_step(word, path)
      return str(path)
    if word.startswith('../shared/') and not (Path(REPO) / word).exists():
      pytest.skip(f'{word} is not present here')
    if re.fullmatch(r'[\w.-]+\.(jpe?g|png)', word) and not (Path(REPO) / word).exists():
      return str(_photo(self.tmp / 'photos' / word))
    if re.search(r'<\w+>', word):
      pytest.fail(f'README placeholder {word!r} that tests/test_readme.py cannot fill')
    return word

  # Running ----------------------------------------------------------------

  def argv(self, command: Command) -> List[str]:
    _, kind = classify(command)
    words = [sys.executable]
    for i, word in enumerate(command.words[1:], 1):
      words.append(self.fill(word, output=command.words[i - 1] in OUTPUT_FLAGS))
    if kind == 'pipeline':
      own = self.tmp / 'roots' / f'line{command.line}'
      words += ['--pipeline-root', str(own if command.has('--data-root') else self.tuned_root)]
      words += TINY_RUN_WITH_TFLITE if self.with_tflite(command) else TINY_RUN
      for flag, value in RUN_DEFAULTS.items():
        if not command.has(flag):
          words += [flag, value]
    elif kind == 'predict' and not (command.has('--model-dir') or command.has('--pipeline-root')):
      words += ['--pipeline-root', str(self._tuned())]
    elif kind == 'compile':
      words += ['--output', str(self.tmp / 'vertex' / f'line{command.line}.json')]
    return words

  @staticmethod
  def with_tflite(command: Command) -> bool:
    """Whether `command` is the last tuned-root run before a `predict --tflite` reads its push."""
    tuned = lambda c: classify(c) == ('run', 'pipeline') and not c.has('--data-root')  # noqa: E731
    readers = [c for c in COMMANDS if classify(c) == ('run', 'predict') and c.has('--tflite')]
    return any(
      [c for c in COMMANDS if tuned(c) and c.line < reader.line][-1:] == [command]
      for reader in readers
    )

  def run(self, command: Command) -> subprocess.CompletedProcess:
    """Runs `command` once; whoever asks first runs it (and the steps it needs), others wait."""
    with self._lock:
      future = self.results.get(command.line)
      mine = future is None
      if mine:
        future = self.results[command.line] = concurrent.futures.Future()
        self._runners[command.line] = threading.get_ident()
    if not mine and not future.done() and self._runners[command.line] == threading.get_ident():
      pytest.fail(f'README.md line {command.line}: `{command.text}` needs its own output')
    if mine:
      try:
        if self._closing:
          raise RuntimeError('the README tests are over')
        argv = self.argv(command)
        self.argvs[command.line] = argv
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
          # Started warm (tests/runs.py): the command's own code is imported afresh.
          process = runs.popen(argv[1:], None, out.fileno(), err.fileno())
          self._processes.append(process)
          try:
            process.wait(timeout=600)
          finally:
            process.kill()
          out, err = (f.seek(0) or f.read().decode(errors='replace') for f in (out, err))
        future.set_result(subprocess.CompletedProcess(argv, process.returncode, out, err))
      except BaseException as e:  # pytest's skip and fail too: the asking test reports them.
        future.set_exception(e)
    return future.result()

  def expect_success(self, command: Command) -> subprocess.CompletedProcess:
    result = self.run(command)
    if result.returncode != 0:
      pytest.fail(
        f'README.md line {command.line}: `{command.text}` exited {result.returncode}\n'
        f'ran: {shlex.join(self.argvs[command.line])}\n'
        f'--- stdout (end) ---\n{result.stdout[-3000:]}\n'
        f'--- stderr (end) ---\n{result.stderr[-3000:]}',
        pytrace=False,
      )
    return result


@pytest.fixture(scope='module')
def workspace(tmp_path_factory, request):
  workspace = Workspace(tmp_path_factory.mktemp('readme'))
  params = [getattr(item, 'callspec', None) for item in request.session.items]
  workspace.start_independent(
    [p.params['command'] for p in params if p and isinstance(p.params.get('command'), Command)]
  )
  yield workspace
  workspace.close()


def test_readme_shows_the_commands_this_test_is_for():
  """A broken parse would test nothing: the examples the README is known to show are found."""
  kinds = {classify(c) for c in COMMANDS}
  assert {('run', k) for k in ('pipeline', 'predict', 'report', 'convert', 'compile')} <= kinds
  assert any(c.has('--hparams-from') for c in COMMANDS)


def test_parser_joins_continuations_and_drops_comments(tmp_path):
  readme = tmp_path / 'README.md'
  readme.write_text(
    'text\n```bash\na --x 1   # note\n# only a comment\nb \\\n    --y 2\n```\n'
    '```\nnot a command\n```\n```python\nprint(1)\n```\n'
  )
  assert [(c.line, c.words) for c in readme_commands(readme)] == [
    (3, ['a', '--x', '1']),
    (5, ['b', '--y', '2']),
  ]


@pytest.mark.pipeline
@pytest.mark.parametrize('command', COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command_runs_as_shown(command, workspace):
  kind = classify(command)
  if kind is None:
    pytest.fail(
      f'README.md line {command.line}: `{command.text}`: tests/test_readme.py does not '
      'know this command; teach it how to run it (or why it cannot run here)'
    )
  if kind[0] == 'skip':
    pytest.skip(kind[1])
  result = workspace.expect_success(command)
  out, argv = result.stdout, workspace.argvs[command.line]
  if kind[1] == 'pipeline':
    assert 'pushed model: ' in out, out[-2000:]
    if command.has('--hparams-from'):
      # The Trainer read the imported hyperparameters, not a cached model.
      assert re.search(r'\] Trainer done in ', out), out[-2000:]
  elif kind[1] == 'predict':
    assert 'model: ' in out and re.search(r': \S+ \d+\.\d%', out), out[-2000:]
  elif kind[1] == 'report':
    assert 'tuning report: ' in out, out[-2000:]
  elif kind[1] == 'convert':
    assert 'wrote ' in out, out[-2000:]
  elif kind[1] == 'compile':
    assert os.path.isfile(argv[argv.index('--output') + 1]), out[-2000:]
