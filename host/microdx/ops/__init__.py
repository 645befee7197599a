"""Host-side layer kinds: float forward, quantization and the integer reference, one module per kind.

The integer reference of each kind does exactly the arithmetic of the device kernel of the same kind
(device/udx/<kind>.py), with int32 bounds asserted on every intermediate.
"""
from microdx.ops import act, add, affine, codebook, conv2d, dense, dense16, dwconv2d, gap, pool, softmax, sparse

OPS = {"dense": dense, "affine": affine, "sparse": sparse, "codebook": codebook, "dense16": dense16, "conv2d": conv2d,
       "dwconv2d": dwconv2d, "gap": gap, "avgpool2d": pool, "maxpool2d": pool, "act": act, "softmax": softmax, "add": add}


def op(kind: str):
    """The module implementing layer kind `kind`."""
    from microdx.errors import UnsupportedOpError

    try:
        return OPS[kind]
    except KeyError:
        raise UnsupportedOpError(f"no host implementation for layer kind '{kind}'") from None
