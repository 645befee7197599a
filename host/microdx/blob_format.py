"""Constants of the .dxb format v1 (docs/format.md). The device copy is device/udx/blob.py."""
import numpy as np

MAGIC = b"uDXB"
MAJOR, MINOR = 1, 0
PREAMBLE = "<4sBBHII"          # magic, major, minor, flags, header length, header CRC32
PREAMBLE_SIZE = 16
RECORD_PREFIX = "<II"          # record meta length, meta CRC32
MAX_HEADER = 32768
MAX_META = 4096
ALIGN = 4

# blob dtype name -> little-endian numpy dtype
DTYPES = {"u8": np.dtype("u1"), "i8": np.dtype("i1"), "u16": np.dtype("<u2"), "i16": np.dtype("<i2"),
          "i32": np.dtype("<i4"), "u32": np.dtype("<u4"), "f16": np.dtype("<f2"), "f32": np.dtype("<f4")}
NP_TO_DTYPE = {v: k for k, v in DTYPES.items()}


def align(n: int) -> int:
    """n rounded up to the payload alignment (bytes)."""
    return (n + ALIGN - 1) // ALIGN * ALIGN

# (layer kind, dtype) pairs the device runtime has kernels for (device/udx/plan.py KERNELS; a test checks both agree)
KIND_DTYPES = {("dense", "i8"), ("dense", "f32"), ("sparse", "i8"), ("codebook", "i8"), ("dense16", "i8"),
               ("dense16", "f32"), ("conv2d", "i8"), ("conv2d", "f32"), ("dwconv2d", "i8"), ("dwconv2d", "f32"),
               ("gap", "i8"), ("gap", "f32"), ("avgpool2d", "i8"), ("avgpool2d", "f32"), ("maxpool2d", "i8"),
               ("maxpool2d", "f32"), ("act", "i8"), ("act", "f32"), ("softmax", "i8"), ("softmax", "f32"),
               ("add", "i8"), ("add", "f32")}
