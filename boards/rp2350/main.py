# Raspberry Pi Pico 2 (RP2350, Arm cores), MicroPython: spoken digits from an I2S MEMS microphone (INMP441 or
# SPH0645: SCK -> GP16, WS -> GP17, SD -> GP18, L/R -> GND, VDD -> 3V3), classified by models/kws-digits/rp2040.dxb
# (the DS-CNN) through its own MFCC front-end on the board. The RP2350's 520 KB of SRAM leave room for a budget that
# keeps every layer resident (udx's layer cache: no flash reads after the first inference); each label is printed
# with the milliseconds since the previous one, and the LED lights while a digit is heard with p >= 0.8.
# Deploy: microdx deploy models/kws-digits/rp2040.dxb --port /dev/ttyACM0 --board rp2350 --name model.dxb --main
import time

from machine import I2S, Pin

import udx
from udx.listen import find, listen

RATE = 8000           # Hz: the model's front-end rate (`microdx inspect` shows it)
BUDGET = 96 * 1024    # bytes: activations, and the whole model kept in RAM


class Timed:
    """Print each label with the time since the previous one (a hop of audio is the budget it must stay under)."""

    def __init__(self):
        self.t = time.ticks_ms()

    def __call__(self, label, p):
        now = time.ticks_ms()
        print("heard", label, "p=%.2f" % p, "after %d ms" % time.ticks_diff(now, self.t))
        self.t = now


mic = I2S(0, sck=Pin(16), ws=Pin(17), sd=Pin(18), mode=I2S.RX, bits=32, format=I2S.MONO, rate=RATE, ibuf=8192)
model = udx.Model(find("model.dxb"), budget=BUDGET)
print("listening:", model.name, "with the", udx.backend(), "backend,", model.flash_bytes_per_inference,
      "bytes from flash per inference")
listen(model, mic, wide=True, led=Pin("LED", Pin.OUT), report=Timed())
