# The kernel backend, chosen once when udx is imported, the fastest this firmware runs:
#   "asm":    Arm builds with the native emitter: asm_thumb inner loops (armv6m subset, so the RP2040 runs them)
#             where a kernel has one, viper elsewhere;
#   "viper":  MicroPython with the native emitter and .mpy files of its architecture;
#   "ulab":   firmwares with ulab but no native emitter (CircuitPython): ulab's C dot where it is exact (int8 dense,
#             udx/dense_ulab.py), viper if the firmware also has it, else pure Python, elsewhere;
#   "python": everywhere else.
# Each kernel module imports its fast twins (udx/<kind>_viper.py, _asm.py, _ulab.py) itself, only when a blob needs
# that kind, and uses them as the backend allows; every twin computes exactly the integers of the reference beside
# the kernel.
NAME = "python"
NATIVE = False   # whether the viper twins load here (the ulab backend uses them beside ulab's dot)
_ORDER = ("python", "ulab", "viper", "asm")


def use(name):
    """Select backend `name` ("asm", "viper", "ulab" or "python"); ImportError if this firmware cannot run it."""
    global NAME
    if name not in _ORDER:
        raise ValueError("unknown backend %r (asm, viper, ulab, python)" % name)
    try:   # SyntaxError without the native emitter, ValueError for .mpy of another architecture, AttributeError
        if name in ("viper", "asm"):   # (or no asm_thumb at all) on a port that is not Arm
            import udx.dense_viper   # noqa: F401  every native firmware runs the dense twins
        if name == "asm":
            import udx.dense_asm   # noqa: F401
        if name == "ulab":
            import udx.dense_ulab   # noqa: F401
    except (SyntaxError, ValueError, AttributeError, ImportError) as e:
        raise ImportError("no %s backend on this firmware: %s" % (name, e))
    NAME = name


def twin(viper, asm=None, ulab=None):
    """The fast twin to use (modules a kernel imported, None where it has none): `asm` under the asm backend if there
    is one, `ulab` under the ulab backend if there is one, else `viper` where native code runs, else None (the
    reference)."""
    if NAME == "asm" and asm is not None:
        return asm
    if NAME == "ulab":
        return ulab if ulab is not None else (viper if NATIVE else None)
    return viper if NAME != "python" else None


try:
    import udx.dense_viper   # noqa: F401
    NATIVE = True
except (SyntaxError, ValueError, ImportError):
    pass
for _name in ("asm", "viper", "ulab"):
    try:
        use(_name)
        break
    except ImportError:
        pass
