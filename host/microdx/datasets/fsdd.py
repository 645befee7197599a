"""The Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0), read in place: `recordings/{digit}_{speaker}_{take}.wav`,
6 speakers x 10 digits x 50 takes at 8 kHz. Conventional split: takes 0-4 test (300 clips), 5-49 train (2,700)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from microdx.errors import MicrodxError
from microdx.paths import ROOT

DEFAULT = ROOT.parent / "shared" / "data" / "fsdd"
NAME = re.compile(r"(\d)_([a-z]+)_(\d+)\.wav$")


def clips(path=DEFAULT) -> list[tuple[Path, int, str, int]]:
    """(file, digit, speaker, take) of every recording, sorted by file name."""
    folder = Path(path) / "recordings"
    if not folder.is_dir():
        raise MicrodxError(f"no FSDD recordings at {folder}: pass --data PATH to the folder holding recordings/")
    out = []
    for f in sorted(folder.glob("*.wav")):
        m = NAME.match(f.name)
        if m:
            out.append((f, int(m.group(1)), m.group(2), int(m.group(3))))
    if not out:
        raise MicrodxError(f"{folder} holds no FSDD recordings named DIGIT_SPEAKER_TAKE.wav")
    return out


def features(path=DEFAULT, progress=None) -> dict:
    """MFCC features of every clip: x (N, 650) float32, digit (N,), speaker (N,) index into `speakers`, take (N,)."""
    from scipy.io import wavfile

    from microdx.features.mfcc import mfcc

    items = clips(path)
    speakers = sorted({s for _, _, s, _ in items})
    x = np.empty((len(items), 650), np.float32)
    for i, (f, _, _, _) in enumerate(items):
        rate, pcm = wavfile.read(f)
        if rate != 8000:
            raise MicrodxError(f"{f}: {rate} Hz; FSDD is 8 kHz")
        x[i] = mfcc(pcm, rate).reshape(-1)
        if progress:
            progress(i + 1)
    return {"x": x, "digit": np.array([d for _, d, _, _ in items]),
            "speaker": np.array([speakers.index(s) for _, _, s, _ in items]),
            "take": np.array([t for _, _, _, t in items]), "speakers": speakers}


def int_features(path=DEFAULT, frames: int = 50) -> dict:
    """The device's integer MFCCs (microdx.features.fixed_mfcc, default Params: 8 kHz, 25 ms frames every 10 ms,
    13 coefficients) of every clip, each cut or zero-padded to `frames` frames: c (N, frames, 13) int32 in Q8 log2
    units (the models take x = c / 256), with name, digit, speaker (name) and take. About 45 s for the 3,000 clips,
    with a progress bar; cached in the temporary folder under a key of the file list (names, sizes, mtimes) and the
    parameters, so the training and bundling tools compute them once."""
    import hashlib
    import json
    import tempfile

    from scipy.io import wavfile
    from tqdm import tqdm

    from microdx.features import fixed_mfcc as fm

    p = fm.Params()
    items = clips(path)
    key = hashlib.sha1(json.dumps([p.as_dict(), frames, str(Path(path).resolve())] +
                                  [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f, *_ in items]).encode())
    cache = Path(tempfile.gettempdir()) / f"microdx-fsdd-mfcc-{key.hexdigest()[:16]}.npz"
    meta = dict(name=np.array([f.name for f, *_ in items]), digit=np.array([d for _, d, _, _ in items], np.int64),
                speaker=np.array([s for _, _, s, _ in items]), take=np.array([t for *_, t in items], np.int64))
    if cache.exists():
        with np.load(cache) as z:
            if list(z["name"]) == list(meta["name"]):
                return {**meta, "c": z["c"]}
    t = fm.tables(p)
    c = np.zeros((len(items), frames, p.n_mfcc), np.int32)
    for i, (f, *_) in enumerate(tqdm(items, desc="integer MFCCs", unit="clip", disable=None)):
        rate, pcm = wavfile.read(f)
        if rate != p.rate or pcm.dtype != np.int16 or pcm.ndim != 1:
            raise MicrodxError(f"{f}: {rate} Hz {pcm.dtype} {pcm.shape}; FSDD clips are 8 kHz mono int16")
        c[i] = fm.frames_int(pcm, p, frames, t=t)
    np.savez(cache, c=c, name=meta["name"])
    return {**meta, "c": c}
