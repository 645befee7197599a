"""The front-end through ulab (udx/frontend_ulab.py), the ulab backend's twin of udx.frontend.Frontend.frame: ulab's C
FFT and dot in floating point on the real ../shared/targets/circuitpython (float32, no native emitter) and
micropython-ulab (float64). Not bit-exact with the integer path, so it is held to a stated tolerance against the
host's integer reference (microdx.features.fixed_mfcc.frames_int), in Q8 units (1/256 log2):

measured on 30 FSDD test recordings x 50 frames: median 0, 99th percentile 6, largest 24 units on both firmwares
(the integer path itself differs from the exact float pipeline by a median of about 2 units on speech,
tests/test_frontend.py). On CircuitPython it runs 7-10x faster than the pure-Python integer path (wall time on this
PC: 7.4x and 9.8x in two runs); the bundled keyword DNN gives the host's label on 60 of 60 recordings from these
features.
"""
import json
import shutil
import struct
import subprocess

import numpy as np
import pytest

from microdx import emulator, paths
from microdx.datasets import fsdd
from microdx.features import fixed_mfcc as fm
from test_frontend import SCRIPT   # the same device script: a Frontend, whole clips, time per frame

TARGETS = paths.ROOT.parent / "shared" / "targets"
FIRMWARES = {"circuitpython": TARGETS / "circuitpython", "micropython-ulab": TARGETS / "micropython-ulab"}
P = fm.Params()
FRAMES = 50
N = P.frame + P.hop * (FRAMES - 1)


def _recordings(count):
    return _pcm([c for c in fsdd.clips()[::10] if c[3] < 5][:count])


def _run(firmware, tmp_path, clips, backend):
    if not FIRMWARES[firmware].exists():
        pytest.skip(f"needs ../shared/targets/{firmware}")
    d = tmp_path / backend
    shutil.copytree(paths.repo_dir("device") / "udx", d / "udx")   # sources: CircuitPython's .mpy version differs
    t = {k: [int(v) for v in a.reshape(-1)] for k, a in fm.tables(P).items()}
    (d / "tables.json").write_text(json.dumps(t))
    (d / "pcm.bin").write_bytes(struct.pack("<IIII", len(clips), N, FRAMES, P.hop) + b"".join(
        c.astype("<i2").tobytes() for c in clips))
    (d / "s.py").write_text(f"BACKEND = {backend!r}\n" + SCRIPT)
    proc = subprocess.run([str(FIRMWARES[firmware]), "-X", "heapsize=1M", "s.py"], cwd=d, capture_output=True,
                          text=True, timeout=1800, env={"MICROPYPATH": str(d)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("clip ")]
    us = float(next(ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith("us_per_frame")))
    return [np.frombuffer(bytes.fromhex(r), "<i4").astype(np.int64).reshape(FRAMES, P.n_mfcc) for r in rows], us


@pytest.mark.skipif(not (fsdd.DEFAULT / "recordings").is_dir(), reason="needs ../shared/data/fsdd")
@pytest.mark.parametrize("firmware", sorted(FIRMWARES))
def test_ulab_front_end_follows_the_integer_reference_on_speech(tmp_path, firmware):
    clips = _recordings(30)
    got, us = _run(firmware, tmp_path, clips, "ulab")
    t = fm.tables(P)
    d = np.concatenate([np.abs(g - fm.frames_int(c, P, FRAMES, t)).reshape(-1) for g, c in zip(got, clips)])
    median, p99, top = np.median(d), np.percentile(d, 99), d.max()
    print(f"{firmware}: ulab front-end vs integer reference, Q8 units: median {median}, 99th percentile {p99}, "
          f"largest {top}; {us / 1000:.2f} ms per frame on this PC")
    assert median <= 1 and p99 <= 8 and top <= 40, (median, p99, top)


def test_ulab_front_end_is_faster_than_pure_python_on_circuitpython(tmp_path):
    """Wall time on the same firmware in one run (a ratio, not a timed assertion: both run the same clips)."""
    rng = np.random.default_rng(3)
    clips = [np.clip(rng.normal(0, 3000, N), -32768, 32767).astype(np.int16) for _ in range(2)]
    ulab, us_ulab = _run("circuitpython", tmp_path, clips, "ulab")
    pure, us_pure = _run("circuitpython", tmp_path, clips, "python")
    t = fm.tables(P)
    for p, c in zip(pure, clips):
        np.testing.assert_array_equal(p, fm.frames_int(c, P, FRAMES, t))   # pure Python: exact
    print(f"circuitpython front-end per frame: pure {us_pure:.0f} us, ulab {us_ulab:.0f} us "
          f"({us_pure / us_ulab:.1f}x)")
    assert all(np.abs(u - p).max() <= 64 for u, p in zip(ulab, pure))


@pytest.mark.skipif(not (fsdd.DEFAULT / "recordings").is_dir(), reason="needs ../shared/data/fsdd")
def test_the_keyword_dnn_classifies_recordings_through_the_ulab_front_end(tmp_path):
    """The bundled DNN (models/kws-digits/dnn-rp2040.dxb) on CircuitPython from PCM: its ulab front-end, its ulab
    dense kernels; labels as accurate as the host's integer pipeline on the same 60 recordings."""
    if not FIRMWARES["circuitpython"].exists():
        pytest.skip("needs ../shared/targets/circuitpython")
    from microdx import audio, blob_reader, bundled, data, pipeline, reference

    path = bundled.blob("kws-digits", "dnn-rp2040")
    g = blob_reader.read(path).graph
    items = [c for c in fsdd.clips() if c[3] < 5][::5]
    pcm = audio.pcm_rows(np.stack(_pcm(items)), g.frontend)
    y = np.array([d for _, d, _, _ in items])
    dev = emulator.run(path, pcm, board="rp2040", heap=1 << 20, source=True, firmware=FIRMWARES["circuitpython"])
    host = reference.run(g, pipeline.model_input(g, data.Data("clips", None, None, y, pcm)))
    acc_dev, acc_host = (dev.outputs.argmax(1) == y).mean(), (host.argmax(1) == y).mean()
    same = (dev.outputs.argmax(1) == host.argmax(1)).mean()
    print(f"kws DNN on CircuitPython through ulab: accuracy {acc_dev:.3f} (host integer path {acc_host:.3f}), "
          f"same label as the host on {same:.3f} of {len(y)} recordings; backend {dev.stats['backend']}")
    assert dev.stats["backend"] == "ulab" and acc_dev >= acc_host - 0.02 and same >= 0.95


def _pcm(items):
    from scipy.io import wavfile

    out = []
    for f, *_ in items:
        pcm = wavfile.read(f)[1][:N]
        out.append(np.pad(pcm, (0, N - len(pcm))).astype(np.int16))
    return out
