"""udx: stream .dxb models from flash on MicroPython and CircuitPython."""
from udx.errors import (UdxError, FormatError, TruncatedError, ChecksumError, VersionError,
                        UnsupportedLayerError, BudgetError, InputShapeError)
from udx.model import Model
from udx import backends as _backends


def backend():
    """The kernel backend in use: "asm" (Arm inner loops), "viper" (native code) or "python"."""
    return _backends.NAME


def use_backend(name):
    """Select the kernel backend ("asm", "viper" or "python"); ImportError if this firmware cannot run `name`."""
    _backends.use(name)

__version__ = "0.1.0"
