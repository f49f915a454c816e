"""--hparams-from: whatever it names, the Trainer gets a folder with the hyperparameters alone."""

import json
import os

import pytest
from tfx.utils import io_utils

from tfx_pipeline import hparams_file
from tfx_pipeline.cli_paths import PathError

CONFIG = {
  'space': [
    {
      'class_name': 'Int',
      'config': {
        'name': 'units',
        'default': 128,
        'conditions': [],
        'min_value': 64,
        'max_value': 256,
        'step': 64,
        'sampling': 'linear',
      },
    }
  ],
  'values': {'units': 192, 'tuner/epochs': 1},
}


@pytest.fixture
def tuner_folder(tmp_path):
  """A Tuner's best_hyperparameters/<id> folder with a report copy beside the file, as earlier
  versions of the runner left it."""
  folder = tmp_path / 'Tuner' / 'best_hyperparameters' / '6'
  (folder / 'tuning_report').mkdir(parents=True)
  (folder / 'tuning_report' / 'trials.csv').write_text('trial\n0\n')
  (folder / hparams_file.FILE_NAME).write_text(json.dumps(CONFIG))
  return folder


def test_folder_file_and_json_anywhere_are_found(tuner_folder, tmp_path):
  txt = str(tuner_folder / hparams_file.FILE_NAME)
  assert hparams_file.find(str(tuner_folder)) == txt
  assert hparams_file.find(txt) == txt
  elsewhere = tmp_path / 'my_hparams.json'
  elsewhere.write_text(json.dumps(CONFIG))
  assert hparams_file.find(str(elsewhere)) == str(elsewhere)


@pytest.mark.parametrize('form', ['folder', 'txt', 'json'])
def test_staged_folder_is_what_the_trainer_reads(form, tuner_folder, tmp_path):
  path = {
    'folder': tuner_folder,
    'txt': tuner_folder / hparams_file.FILE_NAME,
    'json': tmp_path / 'hp.json',
  }[form]
  if form == 'json':
    path.write_text(json.dumps(CONFIG))
  root = tmp_path / 'root'
  staged = hparams_file.stage(str(path), str(root))
  assert os.listdir(staged) == [hparams_file.FILE_NAME]
  # The call TFX's Trainer executor makes on its hyperparameters artifact.
  with open(io_utils.get_only_uri_in_dir(staged)) as f:
    assert json.load(f) == CONFIG
  assert os.path.dirname(staged) == str(root / hparams_file.STAGING_DIR)


def test_same_hyperparameters_are_the_same_folder(tuner_folder, tmp_path):
  """Same contents, same artifact URI: the importer reuses it and the Trainer's cache holds."""
  root = str(tmp_path / 'root')
  first = hparams_file.stage(str(tuner_folder), root)
  assert hparams_file.stage(str(tuner_folder / hparams_file.FILE_NAME), root) == first
  other = tmp_path / 'other.json'
  other.write_text(json.dumps({**CONFIG, 'values': {'units': 64}}))
  assert hparams_file.stage(str(other), root) != first


def test_a_tuner_folder_without_the_file_is_refused(tmp_path):
  with pytest.raises(PathError, match='no best_hyperparameters.txt in this folder'):
    hparams_file.find(str(tmp_path))
