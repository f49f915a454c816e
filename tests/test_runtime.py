"""Content keys and whole-file writes: the two helpers every cache, search and staged file uses."""

import os

import pytest

from modules.runtime import content_key, whole_file
from modules.runtime.content_key import ContentKey


def test_a_content_key_is_of_the_contents_and_where_parts_end(tmp_path):
  path = tmp_path / 'weights.bin'
  path.write_bytes(b'abc' * 1_000_000)  # More than one chunk.
  assert ContentKey().add_file(str(path), end=b'').hex() == content_key.of(b'abc' * 1_000_000)
  assert content_key.of('abc') == content_key.of(b'abc') != content_key.of('abd')
  assert len(content_key.of('abc')) == 16 and len(content_key.of('abc', length=24)) == 24
  # Parts end with a NUL: the same bytes cut elsewhere are another key.
  assert ContentKey().add('ab').add('c').hex() != ContentKey().add('a').add('bc').hex()


def test_a_whole_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
  path = str(tmp_path / 'state.json')
  whole_file.write(path, '{"a": 1}')
  whole_file.write(path, b'{"a": 2}')
  with open(path) as f:
    assert f.read() == '{"a": 2}'
  assert os.listdir(tmp_path) == ['state.json']


def test_a_write_that_fails_leaves_the_old_file_and_no_partial(tmp_path):
  path = str(tmp_path / 'state.json')
  whole_file.write(path, 'old')
  with pytest.raises(RuntimeError):
    with whole_file.writing(path) as partial:
      with open(partial, 'w') as f:
        f.write('half')
      raise RuntimeError('stopped')
  with open(path) as f:
    assert f.read() == 'old'
  assert os.listdir(tmp_path) == ['state.json']


def test_a_folder_is_written_whole_and_not_over_another(tmp_path):
  folder = str(tmp_path / 'model')
  with whole_file.writing(folder) as partial:
    os.makedirs(partial)
    open(os.path.join(partial, 'saved_model.pb'), 'w').close()
  assert os.listdir(folder) == ['saved_model.pb']
  with pytest.raises(OSError):  # Another process's complete folder stays.
    with whole_file.writing(folder) as partial:
      os.makedirs(partial)
      open(os.path.join(partial, 'other.pb'), 'w').close()
  assert os.listdir(folder) == ['saved_model.pb'] and os.listdir(tmp_path) == ['model']
