"""Exceptions. The blob-reading ones carry the same class names as the device runtime (device/udx/errors.py),
so a bad blob is reported alike on the host and on a board."""


class MicrodxError(Exception):
    """Base class of every error microdx raises on purpose."""


class FormatError(MicrodxError, ValueError):
    """The file is not a valid .dxb blob."""


class TruncatedError(FormatError):
    """The file ends before a part its header promises."""


class ChecksumError(FormatError):
    """A CRC32 does not match the bytes it covers."""


class VersionError(FormatError):
    """The blob's format major version is not one this reader knows."""


class UnsupportedLayerError(FormatError):
    """The blob holds a layer kind/dtype with no kernel."""


class BudgetError(MicrodxError, MemoryError):
    """A model cannot run inside a RAM budget (bytes)."""


class InputShapeError(MicrodxError, ValueError):
    """Input data of the wrong shape or range."""


class ModelFileError(MicrodxError, ValueError):
    """A model file cannot be read (not ONNX / not an .npz model / wrong kind of array); the message names it."""


class UnsupportedOpError(MicrodxError, ValueError):
    """An imported model uses an operator microdx cannot convert (the message names node and op)."""


class QuantizationError(MicrodxError, ValueError):
    """A layer cannot be quantized inside the 32-bit integer contract."""


class DeviceError(MicrodxError, RuntimeError):
    """The emulated board (MicroPython unix port) failed; `kind` is the device-side exception class name."""

    def __init__(self, kind, message):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class DataFileError(MicrodxError, ValueError):
    """A data .npz (x or x_q, optional y) cannot be used as it is; the message names the file, array and row."""


class BoardFitError(MicrodxError):
    """A blob cannot be stored on (flash) or run on (heap) a board; the message says by how many bytes."""
