# Raspberry Pi Pico (RP2040), MicroPython: spoken digits from an I2S MEMS microphone (INMP441 or SPH0645:
# SCK -> GP16, WS -> GP17, SD -> GP18, L/R -> GND, VDD -> 3V3), classified by models/kws-digits/rp2040.dxb through
# its own MFCC front-end on the board; the LED lights while a digit is heard with p >= 0.8.
# Deploy: microdx deploy models/kws-digits/rp2040.dxb --port /dev/ttyACM0 --name model.dxb --main
# (add --romfs on a firmware with a ROMFS partition: the weights are then read in place; boards/README.md).
import machine

import udx
from udx.listen import find, listen

RATE = 8000   # Hz: the model's front-end rate (`microdx inspect` shows it); the RP2040's PIO I2S runs any rate

mic = machine.I2S(0, sck=machine.Pin(16), ws=machine.Pin(17), sd=machine.Pin(18), mode=machine.I2S.RX, bits=32,
                  format=machine.I2S.MONO, rate=RATE, ibuf=8192)
led = machine.Pin("LED", machine.Pin.OUT)
model = udx.Model(find("model.dxb"))
print("listening:", model.name, "with the", udx.backend(), "backend")
listen(model, mic, wide=True, led=led)   # 32-bit slots: each sample's top 16 bits are kept
