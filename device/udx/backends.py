# The kernel backend, chosen once when udx is imported: "viper" (native code) where the firmware has the native
# emitter and the .mpy files match its architecture, else "python" (CircuitPython, ports without native code).
# Each kernel module imports its fast twin (udx/<kind>_viper.py) itself, only when a blob needs that kind, and
# uses it while NAME is "viper"; the twin computes exactly the integers of the reference beside the kernel.
NAME = "python"


def use(name):
    """Select backend `name` ("viper" or "python"); raises ImportError if this firmware cannot run it."""
    global NAME
    if name == "viper":
        try:   # SyntaxError without the native emitter, ValueError for .mpy of another architecture
            import udx.dense_viper   # noqa: F401  every viper firmware runs the dense twin
        except (SyntaxError, ValueError) as e:
            raise ImportError("no viper backend on this firmware: %s" % e)
    elif name != "python":
        raise ValueError("unknown backend %r (viper, python)" % name)
    NAME = name


def twin(module):
    """The fast twin `module` (already imported by a kernel), or None when the backend is "python"."""
    return module if NAME == "viper" else None


try:
    use("viper")
except ImportError:
    pass
