"""The offline datasets behind the bundled models: seglearn's smartwatch data (read from the installed seglearn 1.2.5
package, its wheel or the .npy, never importing seglearn) and the FSDD integer features."""
import zipfile

import numpy as np
import pytest

from microdx.datasets import fsdd, watch
from microdx.errors import MicrodxError


def test_the_watch_data_loads_beside_the_installed_seglearn():
    d = watch.load()
    assert len(d["X"]) == 140 and all(x.shape[1] == 6 for x in d["X"])
    assert d["y_labels"] == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    assert sorted(set(np.asarray(d["subject"]).tolist())) == list(range(1, 11))


def test_the_watch_data_loads_from_a_wheel_in_place(tmp_path):
    npy = watch.default_path()
    wheel = tmp_path / "seglearn-1.2.5-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(npy, watch.MEMBER)
    a, b = watch.load(wheel), watch.load(npy)
    assert all(np.array_equal(x, y) for x, y in zip(a["X"], b["X"]))


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.npy", "not found"),
    (lambda d: _zip(d / "other.whl"), "holds no seglearn/data/watch_dataset.npy"),
    (lambda d: _write(d / "junk.npy", b"not an array"), "could not be read"),
])
def test_a_wrong_watch_path_is_refused_with_the_way_out(tmp_path, make, message):
    with pytest.raises(MicrodxError, match=message) as e:
        watch.load(make(tmp_path))
    assert "--data PATH" in str(e.value)


def _zip(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("something/else.txt", "x")
    return path


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.skipif(not (fsdd.DEFAULT / "recordings").is_dir(), reason="needs ../shared/data/fsdd")
def test_fsdd_integer_features_are_the_front_end_of_each_clip():
    from scipy.io import wavfile

    from microdx.features import fixed_mfcc as fm

    f = fsdd.int_features()
    assert f["c"].shape == (3000, 50, 13) and (f["take"] < 5).sum() == 300
    for i in (0, 1234, 2999):
        pcm = wavfile.read(fsdd.DEFAULT / "recordings" / f["name"][i])[1]
        assert np.array_equal(f["c"][i], fm.frames_int(pcm, fm.Params(), 50))
