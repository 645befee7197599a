"""`microdx bench frontend`: the integer MFCC front-end (udx.frontend) on the emulated Cortex-M cores, exactly:
instructions per frame per backend (pure Python; viper, the whole frame native) at 8 kHz (FSDD: 200-sample frames
every 80, a 256-point FFT, 26 mels) and 16 kHz (400 every 160, 512 points, 40 mels), and, per board, the fraction of
real time it takes to keep up with a microphone: frames per second x instructions per frame x the board's assumed
cycles per instruction / its clock (boards/*/profile.json; an estimate, like bench models' latencies). Under 1 keeps up."""
from __future__ import annotations

import json

import numpy as np

from microdx.features import fixed_mfcc as fm

SETUPS = {"8k": fm.Params(), "16k": fm.Params(rate=16000, frame=400, hop=160, n_fft=512, n_mels=40)}
BACKENDS = ("python", "viper")   # viper: udx/frontend_viper.py computes the whole frame
FRAMES = 4
NAMES = tuple(SETUPS)

SCRIPT = '''
import json, array, time, binascii
from udx import backends
from udx.frontend import Frontend
fe = Frontend({k: array.array("h", v) for k, v in json.load(open("tables.json")).items()})
x = array.array("h", open("pcm.bin", "rb").read())
out = array.array("i", bytes(4 * fe.n_mfcc))
for name in BACKENDS:
    backends.use(name)
    fe.frame(x, 1, x[0], out, 0)   # warm up
    t0 = time.ticks_us()
    for f in range(FRAMES):
        fe.frame(x, 1 + f * HOP, x[f * HOP], out, 0)
    us = time.ticks_diff(time.ticks_us(), t0)
    print("frame", name, us * 1000 // FRAMES, binascii.hexlify(bytes(out)).decode())
'''


def _signal(p: fm.Params) -> np.ndarray:
    """A chirp with noise, 1 + frame + hop * FRAMES samples: every frame works on speech-like levels."""
    n = 1 + p.frame + p.hop * FRAMES
    t = np.arange(n) / p.rate
    rng = np.random.default_rng(2)
    x = 8000 * np.sin(2 * np.pi * (150 + 2000 * t) * t) + rng.normal(0, 800, n)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _measure(target: str, p: fm.Params) -> dict:
    from microdx import qemu

    x = _signal(p)
    tables = json.dumps({k: [int(v) for v in a.reshape(-1)] for k, a in fm.tables(p).items()}).encode()
    proc = qemu.run_script(target, f"BACKENDS = {BACKENDS!r}\nFRAMES = {FRAMES}\nHOP = {p.hop}\n" + SCRIPT,
                           {"tables.json": tables, "pcm.bin": x.astype("<i2").tobytes()})
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith("frame ")]
    if proc.returncode != 0 or len(rows) != len(BACKENDS):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{target} front-end run failed: {tail[0]}")
    # the last frame the device computed (frame FRAMES-1 of x[1:]), against the host reference
    want = fm.frames_int(x[1:], p, FRAMES)[-1]
    return {name: {"instructions_per_frame": int(ins),
                   "matches_host": bool(np.array_equal(np.frombuffer(bytes.fromhex(h), "<i4"), want))}
            for _, name, ins, h in rows}


def run(progress=None) -> dict:
    from microdx import boards, qemu
    from microdx.bench_kernels import LATENCY_BOARDS, TARGETS

    measured = [t for t in TARGETS if qemu.available(t)]
    rows = {}
    for i, (name, p) in enumerate(SETUPS.items()):
        per = {}
        for target in measured:
            per[target] = _measure(target, p)
        rows[name] = {"setup": name, **p.as_dict(), "frames_per_second": p.rate / p.hop,
                      "table_bytes": fm.table_bytes(fm.tables(p)), **per}
        if progress:
            progress(i + 1)
    realtime = {}
    for board in LATENCY_BOARDS:
        b = boards.load(board)
        if b["qemu_target"] not in measured:
            continue
        realtime[board] = {name: {backend: round(r[b["qemu_target"]][backend]["instructions_per_frame"]
                                                 * r["frames_per_second"] * b["assumed_cycles_per_instruction"]
                                                 / b["clock_hz"], 3) for backend in BACKENDS}
                           for name, r in rows.items()}
    return {"setups": list(rows.values()), "targets": measured, "realtime_fraction": realtime,
            "note": "instructions exact (QEMU -icount); realtime_fraction = the share of each board's CPU the "
                    "front-end needs to keep up with the microphone (an estimate from assumed cycles per "
                    "instruction, boards/*/profile.json): under 1 keeps up"}


def format_report(r: dict) -> str:
    lines = ["microdx bench frontend: instructions per frame (exact) and the share of real time per board", "",
             "| setup | frames/s | " + " | ".join(f"{t} {b}" for t in r["targets"] for b in BACKENDS) + " |",
             "|" + "---|" * (2 + len(BACKENDS) * len(r["targets"]))]
    for s in r["setups"]:
        cells = [f"{s[t][b]['instructions_per_frame']:,}" + ("" if s[t][b]["matches_host"] else " DIFFERS")
                 for t in r["targets"] for b in BACKENDS]
        lines.append(f"| {s['setup']} ({s['frame']} samples every {s['hop']}, {s['n_fft']}-point FFT, "
                     f"{s['n_mels']} mels) | {s['frames_per_second']:.0f} | " + " | ".join(cells) + " |")
    if r["realtime_fraction"]:
        lines += ["", "share of real time (under 1 keeps up):", "",
                  "| board | " + " | ".join(f"{s['setup']} {b}" for s in r["setups"] for b in BACKENDS) + " |",
                  "|" + "---|" * (1 + len(BACKENDS) * len(r["setups"]))]
        for board, per in r["realtime_fraction"].items():
            lines.append(f"| {board} | " + " | ".join(f"{per[s['setup']][b]:.2f}" for s in r["setups"]
                                                        for b in BACKENDS) + " |")
    lines += ["", r["note"]]
    return "\n".join(lines)
