"""The integer MFCC front-end (microdx.features.fixed_mfcc on the host, udx.frontend on the device): the device's
integers equal the host reference exactly on the unix port, qemu-m3 (31-bit small ints) and qemu-m0, on synthetic
clips (silence, a quiet and a full-scale tone, a chirp, white noise at full scale, clipped square waves) and on FSDD
recordings when ../shared/data/fsdd is there; every intermediate stays below 2**30 (asserted by the reference); the
integer path follows the float pipeline closely (on FSDD speech the median error per coefficient stays under 0.02
log2 units and the 99th percentile under 0.1; measured 0.007 and 0.035)."""
import json
import struct

import numpy as np
import pytest

from microdx import qemu
from microdx.datasets import fsdd
from microdx.features import fixed_mfcc as fm
from helpers import run_on_target

P = fm.Params()
FRAMES = 12   # frames per clip on the device (a clip of 50 costs the pure-Python loop 50 FFTs)

SCRIPT = '''
import json, struct, binascii, array
try:
    from time import ticks_us, ticks_diff
except ImportError:   # CircuitPython
    from time import monotonic_ns

    def ticks_us():
        return monotonic_ns() // 1000

    def ticks_diff(a, b):
        return a - b
from udx import backends
backends.use(BACKEND)
from udx.frontend import Frontend
fe = Frontend({k: array.array("h", v) for k, v in json.load(open("tables.json")).items()})
f = open("pcm.bin", "rb")
clips, n, frames, hop = struct.unpack("<IIII", f.read(16))
out = array.array("i", bytes(4 * frames * fe.n_mfcc))
spent = 0
for c in range(clips):
    pcm = array.array("h", f.read(2 * n))
    t0 = ticks_us()
    fe.clip(pcm, frames, hop, out)
    spent += ticks_diff(ticks_us(), t0)
    print("clip", binascii.hexlify(bytes(out)).decode())
print("us_per_frame", spent / (clips * frames))
'''


def _synthetic(n):
    rng = np.random.default_rng(4)
    t = np.arange(n) / P.rate
    return [np.zeros(n), 300 * np.sin(2 * np.pi * 440 * t), 32767 * np.sin(2 * np.pi * 1000 * t),
            20000 * np.sin(2 * np.pi * (200 + 1500 * t) * t), rng.integers(-32768, 32768, n),
            np.where(np.sin(2 * np.pi * 300 * t) > 0, 32767, -32768), np.full(n, -32768)]


def _clips(n):
    out = [np.clip(np.round(c), -32768, 32767).astype(np.int16) for c in _synthetic(n)]
    if (fsdd.DEFAULT / "recordings").is_dir():
        from scipy.io import wavfile
        for f, *_ in fsdd.clips()[::600]:
            pcm = wavfile.read(f)[1].astype(np.int16)
            out.append(np.pad(pcm[:n], (0, max(0, n - len(pcm)))))
    return out


def _device(tmp_path, target, clips, n, backend):
    t = {k: [int(v) for v in a.reshape(-1)] for k, a in fm.tables(P).items()}
    pcm = struct.pack("<IIII", len(clips), n, FRAMES, P.hop) + b"".join(c.astype("<i2").tobytes() for c in clips)
    out = run_on_target(target, tmp_path, f"BACKEND = {backend!r}\n" + SCRIPT,
                        {"tables.json": json.dumps(t).encode(), "pcm.bin": pcm})
    rows = [ln.split()[1] for ln in out.splitlines() if ln.startswith("clip ")]
    per_frame = float(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("us_per_frame")))
    return [np.frombuffer(bytes.fromhex(r), "<i4").reshape(FRAMES, P.n_mfcc) for r in rows], per_frame


# qemu: one virtual microsecond is 1,000 instructions; measured per frame (200 samples, 256-point FFT) on qemu-m3:
# 5.2 M instructions in pure Python, 0.43 M in viper (udx/frontend_viper.py: the whole frame)
CEILINGS = {("qemu-m3", "python"): 6_000_000, ("qemu-m3", "viper"): 500_000}


@pytest.mark.parametrize("target, backend", [("unix", "python"), ("unix", "viper"), ("qemu-m3", "python"),
                                             ("qemu-m3", "viper"), ("qemu-m0", "viper")])
def test_device_front_end_equals_the_host_integers(tmp_path, target, backend):
    if target != "unix" and not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    n = P.frame + P.hop * (FRAMES - 1)
    clips = _clips(n)
    got, us_per_frame = _device(tmp_path, target, clips, n, backend)
    assert len(got) == len(clips)
    for i, (c, g) in enumerate(zip(clips, got)):
        np.testing.assert_array_equal(g, fm.frames_int(c, P, FRAMES), err_msg=f"clip {i}")
    if (target, backend) in CEILINGS:
        assert us_per_frame * 1000 < CEILINGS[target, backend], us_per_frame


def _errors(clips, frames=50):
    d = np.concatenate([np.abs(fm.frames_int(c, P, frames) / 256 - fm.frames_float(c, P, frames)) for c in clips])
    return np.median(d, axis=0).max(), np.percentile(d, 99, axis=0).max()


def test_integer_path_follows_the_float_pipeline_on_speech():
    """FSDD speech, every 50th clip: measured median 0.007, 99th percentile 0.035, largest 0.09 log2 units."""
    if not (fsdd.DEFAULT / "recordings").is_dir():
        pytest.skip("needs ../shared/data/fsdd")
    from scipy.io import wavfile
    median, p99 = _errors([wavfile.read(f)[1] for f, *_ in fsdd.clips()[::50]])
    assert median < 0.02 and p99 < 0.1, (median, p99)


def test_integer_path_follows_the_float_pipeline_on_synthetic_clips():
    """Tones, a chirp, noise, square waves (silence apart): looser, since a full-scale pure tone's window sidelobes
    (-60 dB) lie below the 14-bit FFT's floor (measured: median 0.56, 99th percentile 2.6 log2 units, both from the
    full-scale tone and the chirp); silence gives all zeros."""
    n = P.frame + P.hop * 49
    median, p99 = _errors(_clips(n)[1:len(_synthetic(n))])
    assert median < 1.0 and p99 < 3.0, (median, p99)
    assert not fm.frames_int(np.zeros(n, np.int16), P, 50).any()   # silence: every log floored at 0


def test_full_scale_extremes_stay_inside_the_small_ints():
    """The loudest inputs (alternating full-scale samples, maximal pre-emphasis) pass the reference's 2**30 checks."""
    n = P.frame + P.hop * 3
    x = np.tile([-32768, 32767], n // 2).astype(np.int16)
    fm.frames_int(x, P, 4)            # raises AssertionError past 2**30


STREAM = '''
import json, struct, binascii, array
from udx import backends
backends.use(BACKEND)
from udx.frontend import Frontend, Stream
fe = Frontend({k: array.array("h", v) for k, v in json.load(open("tables.json")).items()})
f = open("pcm.bin", "rb")
n, hop, frames = struct.unpack("<III", f.read(12))
pcm = array.array("h", f.read(2 * n))
st = Stream(fe, hop, frames)
out = array.array("i", bytes(4 * frames * fe.n_mfcc))
mv = memoryview(pcm)
at = 0
sizes = (1, 7, 80, 333, 2, 160)   # chunks of every kind: under a hop, a hop, over a frame
i = 0
while at < n:
    c = min(sizes[i % len(sizes)], n - at)
    st.push(mv[at:at + c])
    at += c
    i += 1
st.window(out)
print("count", st.count)
import gc
gc.collect()
a = gc.mem_alloc()
st.push(pcm, 160)   # two more frames, from a buffer an I2S read would fill: nothing allocated
print("alloc", gc.mem_alloc() - a)
print("window", binascii.hexlify(bytes(out)).decode())
'''


@pytest.mark.parametrize("target, backend", [("unix", "python"), ("unix", "viper"), ("qemu-m3", "viper")])
def test_streaming_in_chunks_equals_the_clip(tmp_path, target, backend):
    """Samples pushed in chunks of 1 to 333 give the frames the whole clip gives: the window holds the last 8."""
    if target != "unix" and not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    n = P.frame + P.hop * 19 + 37           # 20 frames and a partial one
    clip = _clips(n)[3]                     # the chirp
    t = {k: [int(v) for v in a.reshape(-1)] for k, a in fm.tables(P).items()}
    out = run_on_target(target, tmp_path, f"BACKEND = {backend!r}\n" + STREAM,
                        {"tables.json": json.dumps(t).encode(),
                         "pcm.bin": struct.pack("<III", n, P.hop, 8) + clip.astype("<i2").tobytes()})
    lines = dict(ln.split(maxsplit=1) for ln in out.splitlines() if ln.split()[:1] in (["count"], ["window"],
                                                                                      ["alloc"]))
    assert int(lines["count"]) == 20 and int(lines["alloc"]) == 0
    window = np.frombuffer(bytes.fromhex(lines["window"]), "<i4").reshape(8, P.n_mfcc)
    np.testing.assert_array_equal(window, fm.frames_int(clip, P, 20)[-8:])


AUDIO = '''
import array, binascii, udx
from udx import frontend
m = udx.Model("m.dxb")
st = frontend.stream(m)
pcm = array.array("h", open("pcm.bin", "rb").read())
for at in range(0, len(pcm), 100):    # as an I2S driver delivers it
    st.push(pcm[at:at + 100])
print("frames", st.count)
print("out", binascii.hexlify(bytes(frontend.predict(m, st))).decode())
'''


def _audio_model(tmp_path):
    from microdx import blob_writer
    from microdx.quantize import quantize_graph
    from microdx.synthetic import random_graph

    n = P.frame + P.hop * 49
    clips = _clips(n)
    feats = np.stack([fm.frames_int(c, P, 50).reshape(-1) for c in clips]) / 256.0
    q = quantize_graph(random_graph([650, 24, 6], seed=3), feats)[0]
    q = q.copy(frontend=fm.spec(P, 50, *q.input_q))
    blob_writer.write(q, tmp_path / "m.dxb")
    return q, clips


@pytest.mark.parametrize("target", ["unix", "qemu-m3"])
def test_a_blob_with_its_front_end_classifies_audio_as_the_host(tmp_path, target):
    """A blob that carries its front-end (header entry and tables record): the device turns streamed PCM into the
    model's int8 input and output exactly as the host reference does (frames_int, to_input, reference.run)."""
    from microdx import blob_reader, reference

    if target != "unix" and not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    q, clips = _audio_model(tmp_path)
    g = blob_reader.read(tmp_path / "m.dxb").graph
    assert g.frontend == q.frontend
    e = g.frontend
    for i in (2, 3, 4):   # a tone, a chirp, noise
        x = fm.to_input(fm.frames_int(clips[i], P, 50).reshape(1, -1), e["in_mult"], e["in_shift"], e["in_zero"])
        want = reference.run(g, x)[0]
        out = run_on_target(target, tmp_path / str(i), AUDIO, {"m.dxb": (tmp_path / "m.dxb").read_bytes(),
                                                              "pcm.bin": clips[i].astype("<i2").tobytes()})
        lines = dict(ln.split(maxsplit=1) for ln in out.splitlines() if ln.split()[:1] in (["frames"], ["out"]))
        assert int(lines["frames"]) == 50
        np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(lines["out"]), np.int8), want, err_msg=str(i))


def test_front_end_entries_that_do_not_fit_are_refused(tmp_path):
    from microdx import blob_reader
    from microdx.errors import FormatError
    from helpers import rewrite_header, open_each

    _audio_model(tmp_path)
    data = (tmp_path / "m.dxb").read_bytes()
    for change, fragment in (({"n_mels": 20}, "tables are not the ones"), ({"frames": 49}, "not the model's 650")):
        bad = rewrite_header(data, lambda h: h["frontend"].update(change))
        with pytest.raises(FormatError, match=fragment):
            blob_reader.parse(bad)
    bad = rewrite_header(data, lambda h: h["frontend"].update(n_mels=20))
    (tmp_path / "bad.dxb").write_bytes(bad)
    stream = tmp_path / "s.py"
    stream.write_text("import udx\nfrom udx import frontend\nm = udx.Model('%s')\ntry:\n    frontend.stream(m)\n"
                      "except Exception as e:\n"
                      "    print('refused', type(e).__name__, e)\n" % (tmp_path / "bad.dxb"))
    from microdx import emulator
    out = emulator.run_script(stream).stdout
    assert "refused FormatError frontend: tensor 'mel_spans' missing or of the wrong shape" in out, out


CRC_SCRIPT = '''
import json, struct, binascii, array
from udx import backends
backends.use("viper")
from udx.frontend import Frontend
fe = Frontend({k: array.array("h", v) for k, v in json.load(open("tables.json")).items()})
f = open("pcm.bin", "rb")
clips, n, frames, hop = struct.unpack("<IIII", f.read(16))
out = array.array("i", bytes(4 * frames * fe.n_mfcc))
pcm = array.array("h", bytes(2 * n))
for c in range(clips):
    f.readinto(pcm)
    fe.clip(pcm, frames, hop, out)
    print("crc", binascii.crc32(out) & 0xFFFFFFFF)
'''


@pytest.mark.parametrize("target", ["unix", "qemu-m3"])
def test_device_front_end_on_every_fsdd_test_recording(tmp_path, target):
    """The 300 recordings of the conventional test split (takes 0-4), 50 frames each (the bundled models' input):
    the device's viper front-end gives the host's integers on every one (CRC32 of each clip's 650 int32 features)."""
    if not (fsdd.DEFAULT / "recordings").is_dir():
        pytest.skip("needs ../shared/data/fsdd")
    if target != "unix" and not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    import binascii

    from scipy.io import wavfile
    frames = 50
    n = P.frame + P.hop * (frames - 1)
    clips = []
    for f, _, _, take in fsdd.clips():
        if take < 5:
            pcm = wavfile.read(f)[1][:n]
            clips.append(np.pad(pcm, (0, n - len(pcm))).astype("<i2"))
    assert len(clips) == 300
    t = fm.tables(P)
    want = [binascii.crc32(fm.frames_int(c, P, frames, t).astype("<i4").tobytes()) for c in clips]
    data = struct.pack("<IIII", len(clips), n, frames, P.hop) + b"".join(c.tobytes() for c in clips)
    out = run_on_target(target, tmp_path, CRC_SCRIPT, {"tables.json": json.dumps(
        {k: [int(v) for v in a.reshape(-1)] for k, a in t.items()}).encode(), "pcm.bin": data})
    got = [int(ln.split()[1]) for ln in out.splitlines() if ln.startswith("crc ")]
    assert got == want
