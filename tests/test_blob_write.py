"""blob_writer.write is atomic: a temporary file in the target folder, renamed on success, removed on failure."""
import os

import pytest

from microdx import blob_reader, blob_writer
from microdx.synthetic import random_int8


@pytest.fixture(scope="module")
def graph():
    return random_int8([6, 4, 3], seed=2)[0]


def test_write_replaces_the_file_whole(graph, tmp_path):
    path = tmp_path / "m.dxb"
    path.write_bytes(b"old")
    size = blob_writer.write(graph, path)
    assert os.listdir(tmp_path) == ["m.dxb"] and path.stat().st_size == size
    assert blob_reader.read(path).graph.name == graph.name
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_a_failed_write_leaves_nothing(graph, tmp_path, monkeypatch):
    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        blob_writer.write(graph, tmp_path / "m.dxb")
    assert os.listdir(tmp_path) == []


def test_bad_targets_are_named_before_writing(graph, tmp_path):
    with pytest.raises(IsADirectoryError) as e:
        blob_writer.write(graph, tmp_path)
    assert e.value.filename == str(tmp_path)
    with pytest.raises(FileNotFoundError) as e:
        blob_writer.write(graph, tmp_path / "no" / "m.dxb")
    assert e.value.filename == str(tmp_path / "no")
    assert os.listdir(tmp_path) == []


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
