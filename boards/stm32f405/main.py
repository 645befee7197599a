# pyboard v1.1 (STM32F405), MicroPython: spoken digits from an I2S MEMS microphone (INMP441 or SPH0645:
# SCK -> Y6, WS -> Y5, SD -> Y8: I2S2; L/R -> GND, VDD -> 3V3), classified by models/kws-digits/stm32f411.dxb (it
# fits the F405's heap too) through its own MFCC front-end; the green LED lights while a digit is heard, p >= 0.8.
# Deploy: microdx deploy models/kws-digits/stm32f411.dxb --port /dev/ttyACM0 --board stm32f405 --name model.dxb --main
import machine

import udx
from udx.listen import find, listen

RATE = 8000   # Hz: the model's front-end rate (`microdx inspect` shows it)
BUDGET = 6 * 1024   # bytes for activations and weight tiles: the audio front-end's buffers need heap beside them

mic = machine.I2S(2, sck=machine.Pin("Y6"), ws=machine.Pin("Y5"), sd=machine.Pin("Y8"), mode=machine.I2S.RX,
                  bits=32, format=machine.I2S.MONO, rate=RATE, ibuf=8192)
led = machine.Pin("LED_GREEN", machine.Pin.OUT)
model = udx.Model(find("model.dxb"), budget=BUDGET)
print("listening:", model.name, "with the", udx.backend(), "backend")
listen(model, mic, wide=True, led=led)   # 32-bit slots: each sample's top 16 bits are kept
