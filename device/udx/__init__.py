"""udx: stream .dxb models from flash on MicroPython and CircuitPython."""
from udx.errors import (UdxError, FormatError, TruncatedError, ChecksumError, VersionError,
                        UnsupportedLayerError, BudgetError, InputShapeError)
from udx.model import Model

__version__ = "0.1.0"
