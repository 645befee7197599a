# MicroPython script (NOT imported by CPython): runs udx on the unix port for microdx's emulator.
# argv: blob inputs outputs count budget(-1 = none); udx is found through MICROPYPATH.
# Inputs/outputs are raw little-endian arrays, one row per inference. Prints one JSON line of stats;
# on a udx error prints {"error": class, "message": text} and exits with status 2.
import sys
import gc
import json
import time
import array

gc.collect()
BASE = gc.mem_alloc()
blob, inputs, outputs, count, budget = sys.argv[1:6]
count, budget = int(count), int(budget)
import udx  # noqa: E402

gc.collect()
runtime = gc.mem_alloc() - BASE
peak = [runtime]


def sample():
    gc.collect()
    used = gc.mem_alloc() - BASE
    if used > peak[0]:
        peak[0] = used


def fail(kind, message):
    print(json.dumps({"error": kind, "message": message}))
    sys.exit(2)


try:
    model = udx.Model(blob, None if budget < 0 else budget)
    sample()
    code, item = ("b", 1) if model.dtype == "i8" else ("f", 4)
    x = array.array(code, bytes(model.n_in * item))
    total_us = 0
    with open(inputs, "rb") as fin, open(outputs, "wb") as fout:
        for i in range(count):
            if fin.readinto(x) != model.n_in * item:
                fail("InputShapeError", "inputs file ends at row %d" % i)
            if i == 0:
                model.trace = sample        # heap is sampled after every tile of the first inference only
            t0 = time.ticks_us()
            y = model.predict(x)
            total_us += time.ticks_diff(time.ticks_us(), t0)
            if i == 0:
                model.trace = None
                sample()
            fout.write(y)
except udx.UdxError as e:
    fail(type(e).__name__, str(e))
except MemoryError as e:
    fail("MemoryError", "heap exhausted: %s" % e)
print(json.dumps({"runtime_heap_bytes": runtime, "peak_heap_bytes": peak[0], "wall_s": total_us / 1e6,
                  "budget_bytes": model.budget_bytes, "scratch_bytes": model.scratch_bytes,
                  "macs": model.macs, "count": count}))
