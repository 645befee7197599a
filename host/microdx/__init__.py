"""microdx: compress trained models and stream them layer by layer on MicroPython microcontrollers."""

__version__ = "0.1.0"
