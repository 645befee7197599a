"""Audio in, labels out, on the host and the emulated board: `microdx convert --frontend` packs the integer MFCC
front-end into the blob; `run`/`eval` take int16 audio (an .npz `pcm` array, or a .wav) and the host computes the
device's integer features (microdx.audio), while the emulated board computes them itself from the PCM, pushed in
chunks through udx.frontend. Host and device give identical outputs; bad audio inputs get clear errors."""
import json

import numpy as np
import pytest
from scipy.io import wavfile

from microdx import audio, blob_reader, pipeline
from microdx.cli import main
from microdx.features import fixed_mfcc as fm
from microdx.importers import npz

P = fm.Params()
FRAMES = 20
SAMPLES = P.frame + P.hop * (FRAMES - 1)
RNG = np.random.default_rng(5)


def _clips(n):
    """Low tones, high tones and noise bursts of random pitch, level and length (some shorter than the model's
    window, some longer): three classes."""
    out, y = np.zeros((n, SAMPLES + 300), np.int16), np.zeros(n, np.int64)
    t = np.arange(SAMPLES + 300)
    for i in range(n):
        length = int(RNG.integers(SAMPLES // 2, SAMPLES + 300))
        level = 10 ** RNG.uniform(2, 4.3)
        y[i] = i % 3
        pitch = RNG.uniform(200, 800) if y[i] == 0 else RNG.uniform(1500, 3000)
        sig = RNG.normal(size=length) if y[i] == 2 else np.sin(2 * np.pi * pitch / 8000 * t[:length])
        out[i, :length] = np.clip(np.round(level * sig), -32768, 32767)
    return out, y


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A dense model over 20 frames x 13 MFCCs, trained on the integer features by scikit-learn, converted with
    --frontend mfcc:frames=20 from calibration audio (pcm)."""
    from sklearn.neural_network import MLPClassifier

    tmp = tmp_path_factory.mktemp("audio")
    pcm, y = _clips(90)
    x = audio.features(pcm, fm.entry(P, FRAMES)) / 256.0
    clf = MLPClassifier((16,), max_iter=400, random_state=0).fit(x, y)
    npz.save(tmp / "m.npz", npz.from_sklearn_mlp(clf), labels=["low", "high", "noise"])
    np.savez(tmp / "calib.npz", pcm=pcm, y=y, rate=np.int32(8000))
    assert main(["convert", str(tmp / "m.npz"), "-o", str(tmp / "m.dxb"), "--calib", str(tmp / "calib.npz"),
                 "--frontend", f"mfcc:frames={FRAMES}"]) == 0
    test_pcm, test_y = _clips(24)
    np.savez(tmp / "test.npz", pcm=test_pcm, y=test_y)
    np.savez(tmp / "feats.npz", x=audio.features(test_pcm, fm.entry(P, FRAMES)) / 256.0, y=test_y)
    return tmp


def test_convert_packs_the_front_end_calibrated_on_audio(model):
    g = blob_reader.read(model / "m.dxb").graph
    assert g.frontend["frames"] == FRAMES and g.frontend["n_mfcc"] == 13 and g.frontend["rate"] == 8000
    assert (g.frontend["in_mult"], g.frontend["in_shift"]) == fm.input_mapping(g.input_q[0])


def test_audio_and_its_features_give_the_same_host_outputs(model):
    """pcm through microdx.audio and x = features / 256 through the front-end's mapping: the same int8 inputs."""
    g = blob_reader.read(model / "m.dxb").graph
    from microdx import data

    a = pipeline.model_input(g, data.load(model / "test.npz"))
    b = pipeline.model_input(g, data.load(model / "feats.npz"))
    assert a.dtype == np.int8 and np.array_equal(a, b)


def test_eval_on_the_device_from_audio_equals_the_host(model, capsys):
    """The emulated Pico runs the front-end on the PCM itself (pushed 256 samples at a time): outputs identical to
    the host's integer reference for every clip, clips shorter and longer than the window included."""
    assert main(["eval", str(model / "m.dxb"), "--data", str(model / "test.npz"), "--device", "--board", "rp2040",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["input"] == "pcm" and r["count"] == 24
    assert r["mismatches"] == 0 and r["device_accuracy"] == r["accuracy"]
    assert r["accuracy"] >= 0.9, r     # low, high or noise: an easy task, so a broken front-end would show


def test_run_takes_a_wav_file(model, capsys):
    pcm, _ = _clips(1)
    wavfile.write(model / "clip.wav", 8000, pcm[0])
    assert main(["run", str(model / "m.dxb"), "--input", str(model / "clip.wav"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    g = blob_reader.read(model / "m.dxb").graph
    from microdx import data, reference

    want = reference.run(g, pipeline.model_input(g, data.load(model / "clip.wav")))
    assert r["outputs"] == want.tolist() and r["predicted_labels"][0] in ("low", "high", "noise")


@pytest.mark.parametrize("make, message", [
    (lambda d: wavfile.write(d / "bad.wav", 16000, np.zeros(800, np.int16)), "audio at 16000 Hz"),
    (lambda d: wavfile.write(d / "bad.wav", 8000, np.zeros((800, 2), np.int16)), "2 channels"),
    (lambda d: wavfile.write(d / "bad.wav", 8000, np.zeros(800, np.float32)), "float32 samples"),
    (lambda d: (d / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk"), "not a readable .wav"),
])
def test_bad_audio_is_refused_with_the_reason(model, capsys, make, message):
    make(model)
    assert main(["run", str(model / "m.dxb"), "--input", str(model / "bad.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microdx: DataFileError: ") and message in err and "Traceback" not in err, err


def test_audio_for_a_blob_without_front_end_is_refused(model, tmp_path, capsys):
    assert main(["convert", str(model / "m.npz"), "-o", str(tmp_path / "plain.dxb"), "--calib",
                 str(model / "feats.npz")]) == 0
    assert main(["run", str(tmp_path / "plain.dxb"), "--input", str(model / "test.npz")]) == 2
    assert "holds audio (pcm) but the blob has no audio front-end" in capsys.readouterr().err


@pytest.mark.parametrize("spec, message", [
    ("mfcc:frames=21", "21 frames x 13 MFCCs = 273 features; the model takes 260 inputs"),
    ("mfcc:hop=0", "needs 0 < hop <= frame"),
    ("mfcc:n_fft=300", "a power of"),
    ("mfcc:speed=3", "is not NAME=VALUE"),
    ("logmel", "unknown front-end 'logmel'"),
])
def test_bad_front_end_options_are_refused_and_write_nothing(model, tmp_path, capsys, spec, message):
    out = tmp_path / "x.dxb"
    assert main(["convert", str(model / "m.npz"), "-o", str(out), "--calib", str(model / "calib.npz"),
                 "--frontend", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microdx: ") and message in err, err
    assert not out.exists()


def test_float_blobs_and_audio_calibration_without_front_end_are_refused(model, tmp_path, capsys):
    assert main(["convert", str(model / "m.npz"), "-o", str(tmp_path / "f.dxb"), "--float",
                 "--frontend", "mfcc:frames=20"]) == 2
    assert "--frontend takes int8 models" in capsys.readouterr().err
    assert main(["convert", str(model / "m.npz"), "-o", str(tmp_path / "g.dxb"), "--calib",
                 str(model / "calib.npz")]) == 2
    assert "calibrating on audio needs --frontend" in capsys.readouterr().err
    assert not (tmp_path / "f.dxb").exists() and not (tmp_path / "g.dxb").exists()
