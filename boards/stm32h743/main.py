# NUCLEO-H743ZI (STM32H743), MicroPython: spoken digits from an I2S MEMS microphone (INMP441 or SPH0645:
# SCK -> PB13, WS -> PB12, SD -> PB15: I2S2 on the morpho header; L/R -> GND, VDD -> 3V3), classified by
# models/kws-digits/rp2040.dxb (the DS-CNN: the H7 has the heap and speed for it) through its own MFCC front-end;
# the green LED (LD1) lights while a digit is heard with p >= 0.8.
# Deploy: microdx deploy models/kws-digits/rp2040.dxb --port /dev/ttyACM0 --board stm32h743 --name model.dxb --main
import machine

import udx
from udx.listen import find, listen

RATE = 8000   # Hz: the model's front-end rate (`microdx inspect` shows it)

mic = machine.I2S(2, sck=machine.Pin("B13"), ws=machine.Pin("B12"), sd=machine.Pin("B15"), mode=machine.I2S.RX,
                  bits=32, format=machine.I2S.MONO, rate=RATE, ibuf=8192)
led = machine.Pin("LED_GREEN", machine.Pin.OUT)
model = udx.Model(find("model.dxb"))
print("listening:", model.name, "with the", udx.backend(), "backend")
listen(model, mic, wide=True, led=led)   # 32-bit slots: each sample's top 16 bits are kept
