# main.py for the MicroPython unix port (the emulated board, no microphone): classify one input with a streamed
# model, given as the first argument. The boards with a microphone have their own (boards/<board>/main.py).
# Copy to a board by hand: the udx package (device/udx, ideally as .mpy from mpy-cross), the blob, and this file:
#   mpremote cp -r udx : && mpremote cp model.dxb : && mpremote cp main.py :
# tests/test_board_example.py runs this file on the MicroPython unix port with the golden blob.
import gc
import sys

import udx

MODEL = sys.argv[1] if len(sys.argv) > 1 else "/model.dxb"
BUDGET = 32 * 1024          # bytes of RAM the model may use for activations and weight tiles

gc.collect()
free_before = gc.mem_free()
model = udx.Model(MODEL, budget=BUDGET)
print("model", model.name, "inputs", model.n_in, "outputs", model.n_out, "MACs", model.macs)

# Real code would read a sensor / microphone front-end here; features in the model's float units:
features = [0.1 * i for i in range(model.n_in)]
x = model.quantize(features)           # int8, with the blob's input scale and zero point
best, label = model.classify(x)        # arg-max of the int8 logits, bit-exact with the host
scores = model.predict(x)              # the logits themselves (reused buffer: copy to keep)
probs = model.probabilities(scores)    # softmax, in float
gc.collect()
print("class", label, "p=%.3f" % probs[best], "scores", list(scores), "heap used", free_before - gc.mem_free())
model.close()
