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
