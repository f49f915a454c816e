"""The session's tiny run and the runs after it on its root, as a person runs them.

First what the tiny run left (every component once, its outputs), a rerun served
from TFX's cache, and the other tuners up to the Tuner. Then runs through
run_local.py on the same root (stdout a pipe): a worse model (not pushed, and
the console says why), and a parallel search on a terminal (a pty: the live
status lines), during which a second run on the same root is refused. Every
console line must be one of tests/console_lines.py's kinds; everything else
belongs in the run's log. One module, so one pytest-xdist worker runs them in
this order.
"""

import dataclasses
import glob
import json
import os
import re
from typing import List, Optional

import numpy as np
import pytest

from tests import tiny
from tests.conftest import COMPONENTS, REPO, RESOLVER, UPSTREAM
from tests.console_lines import shape, strays
from tests.outputs import check_hyperparameters, check_outputs
from tests.runs import Done, OnTerminal, run_local
from tfx_pipeline.local import cli, predict, results
from tfx_pipeline.local import runner as local_runner

pytestmark = pytest.mark.pipeline
README = os.path.join(REPO, 'README.md')
# Controls a terminal would interpret; the log and a pipe must have none.
CONTROL = re.compile(r'[\x00-\x08\x0b-\x1f\x7f]')
# The search line's last part: the one meaning of an epoch (training_data.epoch_steps).
EPOCH = '; an epoch: a pass over the train split, at least 50 steps'


def _served(root) -> List[str]:
  folder = os.path.join(root, 'serving_model', 'flower-tuner')
  return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _accuracy(done: Done) -> float:
  return float(done.line('test accuracy: ').split()[2])


def _flags(tiny_data, root, **module):
  return ['--data-root', tiny_data, '--pipeline-root', root, *tiny.flags(**module)]


@pytest.fixture(scope='module')
def root(tiny_run):
  return tiny_run.config.pipeline_root


@pytest.fixture(scope='module')
def default_run(tiny_run):
  return tiny_run.done


@pytest.fixture(scope='module')
def worse_run(default_run, tiny_data, root):
  """A model worse than the one serving: the CNN from scratch, one training step."""
  before = _served(root)
  done = run_local(
    *_flags(tiny_data, root, backbone='cnn'),
    '--no-tune',
    '--train-steps',
    '1',
    '--accuracy-threshold',
    '0',
  )
  assert done.rc == 0, done.out[-3000:] + done.err[-3000:]
  return done, before, _served(root)


@pytest.fixture(scope='module')
def parallel_run(worse_run, tiny_data, root):
  """A parallel search on a terminal; a second run on the same root meanwhile."""
  # One step an epoch: a CNN that fails the floor and the serving model's accuracy.
  flags = _flags(tiny_data, root, tuner='random', max_trials=3, backbone='cnn', steps_per_epoch=1)
  run = OnTerminal(*flags, '--parallel-trials', '2', '--accuracy-threshold', '0.9')
  try:
    run.wait_for(r'^log: ')  # It holds the root from before this line.
    second = run_local(*_flags(tiny_data, root), timeout=120)
    done = run.wait()
  finally:
    if run.process.poll() is None:
      run.process.kill()
  assert done.rc == 0, done.out[-3000:] + done.err[-3000:]
  return done, second, run.process.pid


# What the Tuner reads from: a run that stops after it runs only these before it.
TUNER_INPUTS = ('ImportExampleGen', 'StatisticsGen', 'SchemaGen', 'Transform', 'BackboneFeatures')
# The built-in model's search space (modules/search_space.yaml).
BUILTIN_HYPERPARAMETERS = {'units', 'dense_activation', 'learning_rate', 'optimizer'}


def _run(config, **kwargs):
  lines = []
  summary = local_runner.run(config, echo=lines.append, **kwargs)
  return summary, lines


def test_first_run_executes_every_component_once(tiny_run, tiny_data, tmp_path):
  summary, lines = tiny_run.summary, tiny_run.done.lines
  assert summary.states == {c: 'executed' for c in (*COMPONENTS, RESOLVER)}
  for component in COMPONENTS:
    assert any(line.startswith('[') and f'] {component} done in' in line for line in lines)
  assert f'search: hyperband, 5 trials, at most 7 epochs in all{EPOCH}' in lines
  # TFX's Trainer reads this artifact's only file; anything beside it fails a Trainer.
  assert os.listdir(summary.best_hyperparameters_uri) == ['best_hyperparameters.txt']
  check_hyperparameters(summary, BUILTIN_HYPERPARAMETERS)
  check_outputs(summary, tmp_path, tiny_data)
  assert predict.latest_pushed_model(tiny_run.config.serving_model_dir) == summary.pushed_model
  # Each split has one job: Transform leaves test to the Evaluator, which scores it alone.
  config = tiny_run.config
  run = results.run_results(config.metadata_path, config.pipeline_name, tiny_run.done.run_id)
  assert json.loads(run['Evaluator'].properties['example_splits']) == ['test']
  assert summary.evaluation.split == 'test' and summary.evaluation.examples == 10
  transformed = results.output_uri(run, 'Transform', 'transformed_examples')
  assert sorted(os.listdir(transformed)) == ['Split-eval', 'Split-train']


def test_rerun_is_served_from_the_cache(tiny_run):
  summary, lines = _run(tiny_run.config)
  # The TFLite model depends on the trained model and the data alone.
  trained = (*UPSTREAM, 'BackboneFeatures', 'Tuner', 'Trainer', 'TFLiteExport')
  assert {c: summary.states[c] for c in trained} == {c: 'cached' for c in trained}
  # The first run's model is the latest blessed one now: the Evaluator's new baseline
  # (itself), so the evaluation runs once more, and blesses it.
  assert {c: summary.states[c] for c in ('Evaluator', 'Pusher')} == {
    'Evaluator': 'executed',
    'Pusher': 'executed',
  }
  assert summary.evaluation.baseline_accuracy == summary.accuracy
  assert summary.pushed_model
  assert any('9 of 12 components from cache' in line for line in lines)


@pytest.mark.parametrize('tuner', ['bayesian', 'random'])
def test_other_tuners_reuse_upstream_and_search_again(tiny_run, tuner):
  """Up to the Tuner: what comes after it does not depend on the search algorithm."""
  config = tiny_run.config
  config = dataclasses.replace(
    config, module=dataclasses.replace(config.module, tuner=tuner, max_epochs=1)
  )
  summary, lines = _run(config, stop_after='Tuner')
  assert {c: summary.states[c] for c in TUNER_INPUTS} == {c: 'cached' for c in TUNER_INPUTS}
  assert summary.states['Tuner'] == 'executed'
  assert not {'Trainer', 'Evaluator', 'Pusher'} & set(summary.states)
  assert f'search: {tuner}, 2 trials, at most 2 epochs in all{EPOCH}' in lines
  check_hyperparameters(summary, BUILTIN_HYPERPARAMETERS)


def test_fine_tuning_starts_from_a_head_trained_on_the_step_features(tiny_run, tiny_data, capfd):
  """--fine-tune --no-tune on the tiny run's root, up to the Trainer (so nothing it blesses
  becomes the later runs' baseline): the head's phase reads the BackboneFeatures step's
  records, which TFX's cache serves from the tiny run."""
  from tfx.utils import path_utils

  # Three steps an epoch: what each phase learns is tests/test_fine_tuning.py's subject.
  module = dataclasses.replace(tiny_run.config.module, fine_tune=True, steps_per_epoch=3)
  config = dataclasses.replace(tiny_run.config, tune=False, module=module)
  capfd.readouterr()
  summary, lines = _run(config, stop_after='Trainer')
  assert summary.states['Trainer'] == 'executed'
  assert summary.states['BackboneFeatures'] == 'cached'
  printed = capfd.readouterr().out
  view = f'{config.module.backbone} at {config.module.image_size} px'
  # Read, not computed: the step's features serve the head's phase.
  assert re.search(
    rf"^features: {view}, {{'train': 30, 'eval': 10}} examples, from the BackboneFeatures step",
    printed,
    re.M,
  )
  assert 'feature cache:' not in printed
  assert f'backbone: {config.module.backbone} (1280 features per image, fine-tuned)' in lines
  # The fine-tuned model classifies the test photos.
  run = results.run_results(config.metadata_path, config.pipeline_name, summary.run_id)
  trained = path_utils.serving_model_path(results.output_uri(run, 'Trainer', 'model'))
  shards = glob.glob(os.path.join(tiny_data, '*-test.tfrecord-*'))
  assert cli.main(['predict', *shards, '--limit', '3', '--model-dir', trained]) == 0
  assert len(re.findall(r': \w+ [\d.]+%', capfd.readouterr().out)) == 3


def test_the_default_run_shows_only_progress_and_the_summary(default_run):
  lines = default_run.lines
  assert strays(lines) == []
  assert default_run.err == ''
  assert not CONTROL.search(default_run.out)
  kinds = [shape(line) for line in lines]
  for kind in (
    'log',
    'search space',
    'data',
    'backbone',
    'data check',
    'search',
    'tuning',
    'finished',
    'saved model figures',
    'tflite figures',
  ):
    assert kinds.count(kind) == 1, (kind, lines)
  assert kinds.count('component done') == kinds.count('component starts') == 12
  assert kinds.count('trial') == 5  # Hyperband, --max-epochs 2 --factor 2.
  assert lines[0].startswith('log: ') and kinds[1:3] == ['search space', 'data']
  assert kinds.count('class accuracy') == 5 and kinds.count('pushed model') == 1
  # The tiny data has test shards: the Evaluator scores them, beside the best trial's eval score.
  assert kinds.count('best trial') == 1 and kinds.count('optimism') == 0
  assert kinds[kinds.index('accuracy') + 6] == 'best trial'  # After the 5 classes' lines.


def test_every_accuracy_has_its_count_and_interval(default_run):
  """Overall and per class: k/n is the accuracy, the counts add up, the interval holds it."""
  counted = re.compile(r'(\d\.\d{3}) \((\d+)/(\d+), 95% CI (\d\.\d{2})-(\d\.\d{2})\)')
  overall = counted.search(default_run.line('test accuracy: ')).groups()
  classes = [
    counted.search(line).groups()
    for line in default_run.lines
    if shape(line) == 'class accuracy' and '/' in line
  ]
  for accuracy, correct, n, low, high in [overall] + classes:
    assert abs(float(accuracy) - int(correct) / int(n)) < 1e-3
    assert float(low) <= float(accuracy) <= float(high)
  assert int(overall[2]) == sum(int(n) for *_, n, _, _ in classes) == 10  # 2 test photos a class.
  assert int(overall[1]) == sum(int(c) for _, c, *_ in classes)
  best = re.search(r"best trial's eval accuracy: (\d\.\d{3}) ", default_run.line('  best trial'))
  assert best, 'the search ran, so its best score is shown beside the test accuracy'


def test_the_log_keeps_everything_else(default_run):
  log = default_run.log()
  for console_line in default_run.lines:
    assert console_line in log
  # What the console left out: TFX's records, keras-tuner's tables, Keras' epochs.
  for noise in ('Component Transform is running', 'Search: Running Trial #', 'Epoch 1/2'):
    assert noise in log
  assert not CONTROL.search(log.replace('\t', ''))
  name = os.path.basename(default_run.line('log: '))
  assert re.fullmatch(r'\d{8}-\d{6}-\d{3}\.log', name)


def test_per_class_accuracy_and_the_confusion_matrix(default_run, tiny_data):
  classes = [
    line.split(':')[0].strip() for line in default_run.lines if shape(line) == 'class accuracy'
  ]
  assert classes == sorted(['daisy', 'dandelion', 'roses', 'sunflowers', 'tulips'])
  path = default_run.line('confusion matrix: ')[len('confusion matrix: ') :]
  report = re.search(r'  \((\S+): trials\.txt', '\n'.join(default_run.lines)).group(1)
  assert os.path.dirname(path) == report  # Beside the tuning report.
  with open(os.path.join(REPO, path), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def _test_photos(tiny_data, class_names):
  """The tiny data's test photos (encoded) and their class ids in the model's order."""
  rows = list(predict.iter_photos(glob.glob(os.path.join(tiny_data, '*-test.tfrecord-*')), 100))
  return [encoded for _, encoded, _ in rows], np.array([class_names.index(t) for *_, t in rows])


def _on_test_photos(pushed, tiny_data, names):
  """The pushed model on the test photos: (served, uncalibrated probabilities, class ids)."""
  import tensorflow as tf

  images, truth = _test_photos(tiny_data, names)
  out = tf.saved_model.load(pushed).signatures['serving_jpeg'](images=tf.constant(images))
  return out['probabilities'].numpy(), out['uncalibrated_probabilities'].numpy(), truth


def test_the_served_probabilities_are_calibrated_and_the_summary_measures_it(tiny_run, tiny_data):
  """The temperature fitted on eval is in the pushed model; ECE on test, before and after."""
  import tensorflow as tf
  import tensorflow_transform as tft

  from modules import labels
  from modules.model import calibration

  line = tiny_run.done.line('calibration: ')
  found = re.fullmatch(
    r'calibration: temperature (\S+) \(fitted on eval\); test ECE (\S+) -> (\S+) \(15 bins\)',
    line,
  )
  assert found, line
  pushed = tiny_run.summary.pushed_model
  model = tf.saved_model.load(pushed)
  with open(os.path.join(pushed, calibration.CALIBRATION_FILE)) as f:
    fitted = calibration.Fitted(**json.load(f))
  assert fitted.split == 'eval' and fitted.examples == 10  # 2 eval photos a class.
  assert float(model.temperature.numpy()) == pytest.approx(fitted.temperature)
  assert found.group(1) == f'{fitted.temperature:.2f}'

  # The summary's ECE (from the Evaluator's plots) is the served model's on the test photos.
  names = labels.class_names(tft.TFTransformOutput(tiny_run.summary.transform_graph_uri))
  served, own, truth = _on_test_photos(pushed, tiny_data, names)
  assert float(found.group(2)) == pytest.approx(calibration.ece(own, truth), abs=2e-3)
  assert float(found.group(3)) == pytest.approx(calibration.ece(served, truth), abs=2e-3)
  np.testing.assert_allclose(served, calibration.rescale(own, fitted.temperature), atol=1e-5)
  assert (served.argmax(-1) == own.argmax(-1)).all()
  evaluation_uri = tiny_run.summary.evaluation.uri
  with open(os.path.join(evaluation_uri, 'eval_config.json')) as f:
    assert 'uncalibrated_probabilities' in f.read()

  # The diagram is beside the confusion matrix.
  path = tiny_run.done.line('reliability diagram: ')[len('reliability diagram: ') :]
  assert os.path.dirname(path) == os.path.dirname(tiny_run.done.line('confusion matrix: ')[18:])
  with open(os.path.join(REPO, path), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_predict_prints_the_calibrated_probability(tiny_run, tiny_data, capsys):
  """`run_local.py predict` shows the served probability, not the model's own softmax."""
  import tensorflow_transform as tft

  from modules import labels

  pushed = tiny_run.summary.pushed_model
  names = labels.class_names(tft.TFTransformOutput(tiny_run.summary.transform_graph_uri))
  served, own, _ = _on_test_photos(pushed, tiny_data, names)
  shards = glob.glob(os.path.join(tiny_data, '*-test.tfrecord-*'))
  capsys.readouterr()
  assert cli.main(['predict', *shards, '--limit', '100', '--model-dir', pushed]) == 0
  printed = re.findall(r': \w+ ([\d.]+)%', capsys.readouterr().out)
  printed = [float(p) / 100 for p in printed]
  assert printed == pytest.approx(list(served.max(-1)), abs=5.1e-4)  # Shown to 0.1%.
  if (abs(served.max(-1) - own.max(-1)) > 2e-3).any():
    assert printed != pytest.approx(list(own.max(-1)), abs=5.1e-4)


def test_the_pushed_folder_holds_the_checked_int8_tflite_model(tiny_run, tiny_data):
  """model.tflite and labels.txt beside the SavedModel; the summary's figures are theirs."""
  import tensorflow as tf

  from modules.model import tflite
  from tfx_pipeline import tflite_export

  saved = re.fullmatch(
    r'saved model: test accuracy (\S+), (\S+) MB, (\S+) ms/image on 1 thread',
    tiny_run.done.line('saved model: '),
  )
  int8 = re.fullmatch(
    r'tflite int8: (\S+) \((\S+)\), (\S+) MB, (\S+) ms/image on 1 thread',
    tiny_run.done.line('tflite int8: '),
  )
  assert saved and int8, tiny_run.done.out
  # The SavedModel's figure is TFMA's, measured again on the same photos.
  assert float(saved.group(1)) == pytest.approx(_accuracy(tiny_run.done), abs=1e-3)
  pushed = tiny_run.summary.pushed_model
  check = tiny_run.summary.tflite
  assert check.pushed and check.split == 'test' and check.examples == 10
  with open(os.path.join(pushed, tflite.TFLITE_FILE), 'rb') as f:
    model = f.read()
  assert float(int8.group(3)) == pytest.approx(len(model) / 1e6, abs=0.05)
  with open(os.path.join(pushed, tflite_export.REPORT_FILE)) as f:
    assert json.load(f)['tflite']['accuracy'] == check.tflite.accuracy
  with open(os.path.join(pushed, tflite.LABELS_FILE)) as f:
    names = f.read().splitlines()
  assert sorted(names) == sorted(tiny.CLASSES)

  # The pushed TFLite model scores the line's figure on the test photos, decoded as served.
  classifier = tflite.Classifier(model)
  assert classifier.image_size == tiny.MODULE.image_size
  images, truth = _test_photos(tiny_data, names)
  inputs = tf.saved_model.load(pushed).model_input(tf.constant(images)).numpy()
  probabilities = classifier.probabilities(inputs)
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=0.02)
  accuracy = float(np.mean(probabilities.argmax(-1) == truth))
  assert float(int8.group(1)) == pytest.approx(accuracy, abs=1e-3)
  assert float(int8.group(2)) == pytest.approx(accuracy - float(saved.group(1)), abs=1.1e-3)


def test_predict_tflite_classifies_real_photos_as_a_device_would(tiny_run, shared_flowers, capsys):
  """`predict --tflite` decodes in Python: the classes the model gives on Transform's decoding."""
  import tensorflow as tf

  from modules.model import tflite

  pushed = tiny_run.summary.pushed_model
  shard = glob.glob(os.path.join(shared_flowers, '*.tfrecord*'))
  capsys.readouterr()
  assert cli.main(['predict', *shard, '--limit', '50', '--model-dir', pushed, '--tflite']) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0] == f'model: {pushed}/model.tflite'
  printed = re.findall(r': (\w+) ([\d.]+)%', '\n'.join(out[1:]))
  assert len(printed) == 50 and {c for c, _ in printed} <= tiny.CLASSES

  with open(os.path.join(pushed, tflite.TFLITE_FILE), 'rb') as f:
    classifier = tflite.Classifier(f.read())
  with open(os.path.join(pushed, tflite.LABELS_FILE)) as f:
    names = f.read().splitlines()
  encoded = [e for _, e, _ in predict.iter_photos(shard, 50)]
  served = tf.saved_model.load(pushed).model_input(tf.constant(encoded)).numpy()
  expected = [names[i] for i in classifier.probabilities(served).argmax(-1)]
  agree = sum(c == e for (c, _), e in zip(printed, expected))
  # The same pixels (Transform decodes JPEGs as Pillow does); a float rounding may flip a tie.
  assert agree >= 49, f"{agree} of 50 photos as on Transform's decoding"


def test_an_int8_model_that_drops_too_much_is_kept_from_the_push(tiny_run, tmp_path, monkeypatch):
  """Forced: an int8 model that gets every photo wrong. The SavedModel is still exported."""
  from tfx.types import standard_artifacts
  from tfx.utils import path_utils

  from modules.model import tflite
  from tfx_pipeline import tflite_export

  run = results.run_results(tiny_run.config.metadata_path, 'flower-tuner', tiny_run.done.run_id)
  examples = standard_artifacts.Examples()
  examples.uri = results.output_uri(run, 'ImportExampleGen', 'examples')
  examples.split_names = '["train", "eval", "test"]'
  trained = path_utils.serving_model_path(results.output_uri(run, 'Trainer', 'model'))
  wrong = tflite.Classifier.probabilities
  monkeypatch.setattr(
    tflite.Classifier, 'probabilities', lambda self, x: np.roll(wrong(self, x), 1, axis=-1)
  )
  out = str(tmp_path / 'exported')
  with open(os.path.join(tiny_run.summary.pushed_model, tflite.LABELS_FILE)) as f:
    names = f.read().splitlines()
  check = tflite_export.export(trained, examples, names, 'test', 0.02, out)
  assert not check.pushed and check.drop > 0.02
  assert sorted(os.listdir(out)) == sorted(
    os.listdir(trained) + [tflite.LABELS_FILE, tflite_export.REPORT_FILE]
  )
  with open(os.path.join(out, tflite_export.REPORT_FILE)) as f:
    assert json.load(f)['pushed'] is False
  line = check.lines()[1]
  assert line.endswith(
    f'; not pushed: {check.drop:.3f} below the SavedModel, more than --max-tflite-drop 0.02'
  )


def test_a_worse_model_is_not_pushed_and_the_run_says_why(default_run, worse_run):
  done, before, after = worse_run
  assert _accuracy(done) < _accuracy(default_run), 'the worse model is not worse here'
  assert before and after == before  # The serving model is the default run's.
  assert strays(done.lines) == [] and not CONTROL.search(done.out)
  not_pushed = done.line('model not pushed: ')
  assert re.fullmatch(
    r"model not pushed: test accuracy (\d\.\d{3}) is below the serving model's (\d\.\d{3}) "
    r'\(--max-accuracy-drop\); TFMA results in \S+/Evaluator/evaluation/\d+',
    not_pushed,
  ), not_pushed
  assert f"serving model's {_accuracy(default_run):.3f}" in not_pushed


def test_each_summary_reads_its_own_run(root, default_run, worse_run):
  """The runs' ML Metadata records, by the run id each log is named after."""

  def run_id(done):
    return os.path.basename(done.line('log: '))[: -len('.log')]

  metadata = os.path.join(root, 'metadata.sqlite')
  first = results.run_results(metadata, 'flower-tuner', run_id(default_run))
  second = results.run_results(metadata, 'flower-tuner', run_id(worse_run[0]))
  pushed = default_run.line('pushed model: ')[len('pushed model: ') :]
  assert results.pushed_destination(first) == os.path.join(REPO, pushed)
  assert results.pushed_destination(second) is None
  assert 'Tuner' in first and 'Tuner' not in second


def test_a_parallel_search_on_a_terminal(parallel_run, root):
  done, _, _ = parallel_run
  assert strays(done.lines) == [], done.lines  # The screen once the run is over.
  kinds = [shape(line) for line in done.lines]
  assert kinds.count('trial') == 3 and 'search' in kinds
  trials = [line for line in done.lines if shape(line) == 'trial']
  assert [t.split(':')[0] for t in trials] == ['trial 1/3', 'trial 2/3', 'trial 3/3']
  assert trials[-1].endswith(' eta 0s')
  # While it ran: a status row per worker, redrawn in place.
  assert re.search(r'\[tuner[01]\] trial \d/3 epoch \d/2 val_accuracy ', done.out)
  assert '\x1b[K' in done.out
  # The floor failed (a CNN after 2 steps), and so did the comparison with the serving model.
  not_pushed = done.line('model not pushed: ')
  assert re.search(r'test accuracy \d\.\d{3} < 0\.900 \(--accuracy-threshold\)', not_pushed)
  assert "below the serving model's" in not_pushed
  log = done.log()
  assert '[tuner0] ' in log and '[tuner1] ' in log  # The workers' own output.
  assert not CONTROL.search(log.replace('\t', ''))


def test_a_second_run_on_the_same_root_is_refused_at_once(parallel_run, root):
  _, second, first_pid = parallel_run
  assert second.rc == 2 and second.out == ''
  (line,) = second.err.splitlines()
  assert line.startswith(f'error: --pipeline-root {root} is in use by process {first_pid} ')
  assert '--parallel-trials 2' in line
  assert second.seconds < 30, second.seconds  # Before TensorFlow's import, not after.


def _readme_sample() -> List[str]:
  """The sample output block README.md shows for a default run."""
  with open(README) as f:
    text = f.read()
  block = re.search(r'\n```\n(log: .*?)\n```\n', text, re.S)
  assert block, 'README.md shows no sample output starting with its log: line'
  return block.group(1).splitlines()


def _shapes_match(sample: List[str], real: List[Optional[str]]) -> bool:
  """`sample`'s line kinds, with '...' for any run of lines, against `real`'s in order."""
  pattern = ''.join(
    '(?:[^\n]*\n)*?' if line.strip() == '...' else re.escape(f'{shape(line)}\n') for line in sample
  )
  return re.fullmatch(pattern, ''.join(f'{kind}\n' for kind in real)) is not None


def test_readme_sample_output_has_the_shape_of_a_real_run(default_run):
  sample = _readme_sample()
  assert strays([line for line in sample if line.strip() != '...']) == []
  assert _shapes_match(sample, [shape(line) for line in default_run.lines]), (
    'README.md sample vs a real run:\n' + '\n'.join(sample) + '\n---\n' + default_run.out
  )


def test_a_failing_component_is_one_line_and_the_log(parallel_run, tiny_data, root, tmp_path):
  """Hyperparameters the model cannot be built with: the Trainer fails."""
  hparams = tmp_path / 'hparams.json'
  values = {'units': 'many', 'dense_activation': 'relu', 'learning_rate': 1e-3, 'optimizer': 'adam'}
  hparams.write_text(json.dumps({'space': [], 'values': values}))
  done = run_local(*_flags(tiny_data, root), '--no-tune', '--hparams-from', str(hparams))
  assert done.rc == 1
  error, log = done.err.splitlines()
  assert error.startswith('error: Trainer failed: ValueError: ') and 'many' in error
  assert log == done.line('log: ')  # The log the run named at its start.
  assert strays(done.lines) == [] and done.lines[-1] == '[9/11] Trainer ...'
  assert 'Traceback (most recent call last)' in done.log()
