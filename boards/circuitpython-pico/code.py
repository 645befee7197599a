# Raspberry Pi Pico, CircuitPython: spoken digits from a PDM MEMS microphone (CLK -> GP2, DATA -> GP3, SEL -> GND,
# VDD -> 3V3) through audiobusio.PDMIn, classified by models/kws-digits/stm32f411.dxb (the compressed DNN, which the
# pure-Python and ulab backends run fastest) through its own MFCC front-end; the LED lights for p >= 0.8.
# Install: udx's .py files (or .mpy from CircuitPython's own mpy-cross) in CIRCUITPY/lib/udx, the blob as
# CIRCUITPY/model.dxb, this file as CIRCUITPY/code.py (docs/runtime.md, CircuitPython). No viper here: udx picks ulab.
import array

import audiobusio
import board
import digitalio

import udx
from udx.listen import listen

RATE = 8000   # Hz: the model's front-end rate; the microphone records at twice it and pairs are averaged
BUDGET = 6 * 1024   # bytes for activations and weight tiles: udx compiled from .py and the front-end need heap too


class Pdm:
    """audiobusio.PDMIn as a microphone with readinto(buffer) -> bytes: records 2n unsigned 16-bit samples at
    2 x RATE into one fixed buffer and writes n signed ones, each the mean of two (a first low-pass)."""

    def __init__(self, chunk):
        self.pdm = audiobusio.PDMIn(board.GP2, board.GP3, sample_rate=2 * RATE, bit_depth=16)
        self.raw = array.array("H", bytes(4 * chunk))

    def readinto(self, out):
        raw = self.raw
        n = self.pdm.record(raw, 2 * len(out)) // 2   # samples recorded (all asked for, from a microphone)
        for i in range(n):
            out[i] = ((raw[2 * i] + raw[2 * i + 1]) >> 1) - 32768
        return 2 * n


class Led:
    def __init__(self):
        self.io = digitalio.DigitalInOut(board.LED)
        self.io.direction = digitalio.Direction.OUTPUT

    def value(self, v):
        self.io.value = bool(v)


model = udx.Model("model.dxb", budget=BUDGET)
print("listening:", model.name, "with the", udx.backend(), "backend")
listen(model, Pdm(256), led=Led())
