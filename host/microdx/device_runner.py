# MicroPython module (NOT imported by CPython): runs udx on the unix port for microdx's emulator.
# microdx.emulator compiles it with mpy-cross and runs `micropython -c "import microdx_runner"` in a scratch folder
# holding job.txt, model.dxb, in.bin and the udx package, under fixed relative names. The interpreter interns
# module names and command-line arguments on its heap, and how full its string pool is changes what `import udx`
# takes: so nothing varying (host paths, counts) reaches it as a name or an argument; numbers come in job.txt.
# job.txt: "COUNT BUDGET EVERY BACKEND SAMPLES" (BACKEND: auto, or a name for udx.use_backend). If model.img is
# there, it is a ROMFS image holding model.dxb, mounted at /rom with vfs.VfsRom before the heap is counted, as a
# board's memory-mapped ROMFS partition, and the model is opened from there (its weights used in place). in.bin: COUNT raw
# little-endian rows (a link to /dev/zero for rows of zeros): model inputs when SAMPLES is 0, else int16 audio clips
# of SAMPLES samples each, pushed through the blob's front-end (udx.frontend) in chunks as a microphone delivers them;
# outputs go to out.bin. BUDGET: udx.Model budget in bytes, -1 for none. stdout: "progress N" every EVERY
# inferences (0: never), then one JSON line of stats; on a udx error or MemoryError one JSON line
# {"error", "message", "stage"}, exit status 2.
import sys
import gc
import json
import time
import array

with open("job.txt") as job:
    count, budget, every, backend, samples = job.read().split()
    count, budget, every, samples = int(count), int(budget), int(every), int(samples)
CHUNK = 256    # audio samples per push: what one machine.I2S.readinto of a 512-byte buffer gives
peak = [0]
state = {"stage": "import", "runtime_heap_bytes": 0}   # keys made now: no dict growth after BASE


def fail(kind, message):
    gc.collect()    # a MemoryError leaves garbage behind; free it so that this report can be printed
    state.update(error=kind, message=message, base_heap_bytes=BASE, heap_total_bytes=TOTAL)
    print(json.dumps(state))
    sys.exit(2)


def sample():
    gc.collect()
    used = gc.mem_alloc() - BASE
    if used > peak[0]:
        peak[0] = used


def listen(st, fin, chunk, i):
    """Push one clip of `samples` int16 samples from fin through the Stream `st`, CHUNK at a time (read into one
    fixed buffer, as a microphone's DMA delivers them); the microseconds spent in push()."""
    st.reset()
    left = samples
    spent = 0
    while left:
        k = CHUNK if left > CHUNK else left
        if fin.readinto(chunk, 2 * k) != 2 * k:
            fail("InputShapeError", "audio file ends in clip %d" % i)
        t0 = time.ticks_us()
        st.push(chunk, k)
        spent += time.ticks_diff(time.ticks_us(), t0)
        left -= k
    return spent


def infer(model, fin, fout):
    if samples:
        from udx import frontend
        st = frontend.stream(model)
        x = array.array("h", bytes(2 * CHUNK))
    else:
        x = array.array("b", bytes(model.n_in)) if model.dtype == "i8" else array.array("f", bytes(4 * model.n_in))
    total_us = 0
    for i in range(count):
        if samples:
            total_us += listen(st, fin, x, i)
        elif fin.readinto(x) != len(x) * (1 if model.dtype == "i8" else 4):
            fail("InputShapeError", "inputs file ends at row %d" % i)
        if i == 0:
            model.trace = sample        # heap is sampled after every tile of the first inference only
        t0 = time.ticks_us()
        if samples:
            y = frontend.predict(model, st)
        else:
            y = model.predict(x)
        total_us += time.ticks_diff(time.ticks_us(), t0)
        if i == 0:
            model.trace = None
            sample()
        fout.write(y)
        if every and (i + 1) % every == 0:
            print("progress", i + 1)
    return total_us


udx = model = total_us = BASE = TOTAL = None   # every global made now, so the module's dict does not grow after BASE
path = "model.dxb"
try:   # the image stands for flash: it is on the heap here, so it is read before the heap is counted
    fimg = open("model.img", "rb")
except OSError:
    fimg = None
if fimg:
    import vfs
    image = bytearray(fimg.seek(0, 2))
    fimg.seek(0)
    fimg.readinto(image)
    fimg.close()
    vfs.mount(vfs.VfsRom(image), "/rom")
    path = "/rom/model.dxb"
gc.collect()
BASE = gc.mem_alloc()              # the interpreter and this runner; everything after is udx and the model
TOTAL = BASE + gc.mem_free()
try:
    import udx
    if backend != "auto":
        udx.use_backend(backend)
    gc.collect()
    state["runtime_heap_bytes"] = peak[0] = gc.mem_alloc() - BASE
    state["stage"] = "open"
    model = udx.Model(path, None if budget < 0 else budget)
    sample()
    state["stage"] = "inference"
    with open("in.bin", "rb") as fin, open("out.bin", "wb") as fout:
        total_us = infer(model, fin, fout)
except MemoryError as e:
    fail("MemoryError", "heap exhausted: %s" % e)
except ImportError as e:    # a backend this firmware cannot run
    fail("BackendError", str(e))
except udx.UdxError as e:
    fail(type(e).__name__, str(e))
print(json.dumps({"runtime_heap_bytes": state["runtime_heap_bytes"], "peak_heap_bytes": peak[0],
                  "wall_s": total_us / 1e6, "budget_bytes": model.budget_bytes, "scratch_bytes": model.scratch_bytes,
                  "macs": model.macs, "count": count, "backend": udx.backend(),
                  "flash_bytes_per_inference": model.flash_bytes_per_inference, "in_place_layers": model.in_place,
                  "base_heap_bytes": BASE, "heap_total_bytes": TOTAL}))
