# Listening: classify what a microphone delivers, through the blob's own audio front-end (udx.frontend), for the
# boards' example main.py files (boards/<board>/main.py). The microphone is any object with readinto(buffer) that
# returns the bytes it read: machine.I2S in RX mode on MicroPython boards, a wrapper of audiobusio.PDMIn on
# CircuitPython, or a file of raw int16 samples (how tests/test_boards.py drives it on the unix port). One fixed
# buffer is read into, as a DMA delivers audio; a classification allocates what predict() and the softmax do.
import array

from udx import frontend


def listen(model, mic, chunk=256, every=8, wide=False, led=None, threshold=0.8, report=None):
    """Read `chunk` samples at a time from `mic` and push them through `model`'s front-end (udx.frontend.stream);
    once a whole window of frames has been heard, classify its last window every `every` chunks, and once more
    when `mic` ends (readinto returns 0: a file), calling report(label, probability) (default: print them).
    `wide`: the microphone gives 32-bit samples (an I2S MEMS microphone such as the INMP441 or SPH0645 puts its
    18 to 24 bits left-aligned in a 32-bit slot): their top 16 bits are kept. `led`: a machine.Pin (or anything
    with value()) lit while the best class's probability is at least `threshold`. Returns the number of
    classifications made."""
    st = frontend.stream(model)
    pcm = array.array("h", bytes(2 * chunk))
    raw = array.array("i", bytes(4 * chunk)) if wide else pcm
    view = memoryview(raw)
    report = report or _print
    made = 0
    pushed = 0
    last = -1
    while True:
        got = mic.readinto(view) // (4 if wide else 2)
        if got <= 0:
            break
        if wide:
            for i in range(got):
                pcm[i] = raw[i] >> 16
        st.push(pcm, got)
        pushed += 1
        if st.count >= st.frames and pushed % every == 0:
            made += _classify(model, st, led, threshold, report)
            last = st.count
    if st.count >= st.frames and last != st.count:   # what the end of a recording leaves
        made += _classify(model, st, led, threshold, report)
    return made


def find(name="model.dxb"):
    """The path of model file `name`: in the ROMFS partition (/rom, read in place) if it is there, else on the
    filesystem (the working folder)."""
    import os

    try:
        if name in os.listdir("/rom"):
            return "/rom/" + name
    except OSError:   # no /rom mounted
        pass
    return name


def _classify(model, st, led, threshold, report):
    y = frontend.predict(model, st)
    best = 0
    for i in range(1, model.n_out):
        if y[i] > y[best]:
            best = i
    p = model.probabilities(y)[best]
    if led is not None:
        led.value(1 if p >= threshold else 0)
    report(model.labels[best] if best < len(model.labels) else best, p)
    return 1


def _print(label, p):
    print("heard", label, "p=%.2f" % p)
