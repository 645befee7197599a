# WeAct BlackPill (STM32F411CEU6), MicroPython: spoken digits from an I2S MEMS microphone (INMP441 or SPH0645:
# SCK -> B13, WS -> B12, SD -> B15: I2S2; L/R -> GND, VDD -> 3V3), classified by models/kws-digits/stm32f411.dxb
# (26 KB, the compressed DNN) through its own MFCC front-end; the LED on C13 (lit when low) shows a digit, p >= 0.8.
# Deploy: microdx deploy models/kws-digits/stm32f411.dxb --port /dev/ttyACM0 --board stm32f411 --name model.dxb --main
import machine

import udx
from udx.listen import find, listen

RATE = 8000   # Hz: the model's front-end rate (`microdx inspect` shows it)
BUDGET = 6 * 1024   # bytes for activations and weight tiles: the audio front-end's buffers need heap beside them


class ActiveLow:
    """The BlackPill's LED is lit by a low pin."""

    def __init__(self, pin):
        self.pin = pin

    def value(self, v):
        self.pin.value(0 if v else 1)


mic = machine.I2S(2, sck=machine.Pin("B13"), ws=machine.Pin("B12"), sd=machine.Pin("B15"), mode=machine.I2S.RX,
                  bits=32, format=machine.I2S.MONO, rate=RATE, ibuf=8192)
led = ActiveLow(machine.Pin("C13", machine.Pin.OUT))
model = udx.Model(find("model.dxb"), budget=BUDGET)
print("listening:", model.name, "with the", udx.backend(), "backend")
listen(model, mic, wide=True, led=led)   # 32-bit slots: each sample's top 16 bits are kept
