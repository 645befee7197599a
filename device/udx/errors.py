# Exceptions raised by the udx runtime. The host reader (microdx.errors) uses the same class names,
# so a bad blob is reported the same way on a PC and on a board.


class UdxError(ValueError):
    """Base class of every error the runtime raises on purpose. (MicroPython allows one built-in base.)"""


class FormatError(UdxError):
    """The file is not a valid .dxb blob (bad magic, bad structure, out-of-range field)."""


class TruncatedError(FormatError):
    """The file ends before a part its header promises."""


class ChecksumError(FormatError):
    """A CRC32 in the file does not match the bytes it covers (corrupt flash or a bad copy)."""


class VersionError(FormatError):
    """The blob uses a format major version this runtime cannot read."""


class UnsupportedLayerError(FormatError):
    """The blob holds a layer kind or dtype this runtime has no kernel for."""


class BudgetError(UdxError):
    """The model cannot run inside the requested RAM budget (bytes)."""


class InputShapeError(UdxError):
    """predict() was given an input of the wrong length or value range."""
