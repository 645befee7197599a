# The kernel backend, chosen once when udx is imported, the fastest this firmware runs:
#   "asm":    Arm builds with the native emitter: asm_thumb inner loops (armv6m subset, so the RP2040 runs them)
#             where a kernel has one, viper elsewhere;
#   "viper":  MicroPython with the native emitter and .mpy files of its architecture;
#   "python": everywhere else (CircuitPython, ports without native code).
# Each kernel module imports its fast twins (udx/<kind>_viper.py, udx/<kind>_asm.py) itself, only when a blob needs
# that kind, and uses them as the backend allows; every twin computes exactly the integers of the reference beside
# the kernel.
NAME = "python"
_ORDER = ("python", "viper", "asm")


def use(name):
    """Select backend `name` ("asm", "viper" or "python"); raises ImportError if this firmware cannot run it."""
    global NAME
    if name not in _ORDER:
        raise ValueError("unknown backend %r (asm, viper, python)" % name)
    try:   # SyntaxError without the native emitter, ValueError for .mpy of another architecture, AttributeError
        if name != "python":   # (or no asm_thumb at all) on a port that is not Arm
            import udx.dense_viper   # noqa: F401  every native firmware runs the dense twins
        if name == "asm":
            import udx.dense_asm   # noqa: F401
    except (SyntaxError, ValueError, AttributeError, ImportError) as e:
        raise ImportError("no %s backend on this firmware: %s" % (name, e))
    NAME = name


def twin(viper, asm=None):
    """The fast twin to use (modules a kernel imported, None where it has none): `asm` under the asm backend if there
    is one, else `viper` under the asm or viper backend, else None (the reference)."""
    if NAME == "asm" and asm is not None:
        return asm
    return viper if NAME != "python" else None


for _name in ("asm", "viper"):
    try:
        use(_name)
        break
    except ImportError:
        pass
