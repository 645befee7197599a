"""The layer cache: budget left beyond the scratch keeps whole layers resident, largest first, so repeated inference
reads them from flash once. Same integers; budget respected; flash bytes per inference reported; on the Cortex-M3
a resident model costs fewer instructions per inference than the same model streamed (exact counts)."""
import shutil
import subprocess

import numpy as np
import pytest

from microdx import blob_writer, emulator, qemu, ram, reference
from microdx.ir import canonicalize
from microdx.optimizers import get
from microdx.quantize import quantize_graph
from microdx.synthetic import random_graph

RNG = np.random.default_rng(5)


def _model():
    """dense 100->80, 4-bit codebook 80->60, int16 60->40, dense 40->10: every kind that can be kept resident."""
    g = random_graph([100, 80, 60, 40, 10], seed=9)
    g = get("kmeans", bits=4, layers="fc1", min_inputs=1).apply(g).graph
    g = get("int16", layers="fc2").apply(g).graph
    return quantize_graph(g, RNG.normal(size=(64, 100)))[0]


def test_resident_layers_give_the_same_integers_and_read_less(tmp_path):
    q = _model()
    assert [layer.kind for layer in q.layers] == ["dense", "codebook", "dense16", "dense"]
    blob_writer.write(q, tmp_path / "m.dxb")
    x = RNG.integers(-128, 128, size=(5, 100)).astype(np.int8)
    plan = ram.plan(q)
    payload = None
    for extra in (0, 3000, 1 << 20):   # no room for a cache, room for the largest layers, room for all
        budget = plan["full_budget"] + extra
        for backend in ("viper", "python"):
            run = emulator.run(tmp_path / "m.dxb", x, budget=budget, backend=backend)
            np.testing.assert_array_equal(run.outputs, reference.run(q, x), err_msg=f"{extra} {backend}")
            assert run.stats["budget_bytes"] <= budget
        read = run.stats["flash_bytes_per_inference"]
        if payload is None:
            payload = read
            assert payload > 10_000
        elif extra == 3000:
            assert 0 < read < payload
        else:
            assert read == 0, run.stats


@pytest.mark.skipif(not qemu.available("qemu-m3"), reason="needs ../shared/targets/qemu-m3 and qemu-system-arm")
def test_resident_model_costs_fewer_instructions_on_cortex_m3(tmp_path):
    q = _model()
    flash = tmp_path / "flash"
    shutil.copytree(emulator.compiled_device_dir(qemu.ARCH["qemu-m3"]) / "udx", flash / "udx")
    blob_writer.write(q, flash / "m.dxb")
    plan = ram.plan(q)
    script = tmp_path / "s.py"
    script.write_text(
        "import array, time, udx\nx = array.array('b', bytes(100))\n"
        f"for budget in ({plan['full_budget']}, {plan['full_budget'] + 200000}):\n"
        "    m = udx.Model('/flash/m.dxb', budget)\n    m.predict(x)\n    t0 = time.ticks_us()\n    m.predict(x)\n"
        "    print('n', time.ticks_diff(time.ticks_us(), t0) * 1000, m.flash_bytes_per_inference)\n    m.close()\n")
    proc = subprocess.run([str(qemu.TARGETS / "qemu-m3" / "run"), str(flash), str(script)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (streamed, read), (resident, none) = [[int(v) for v in ln.split()[1:]] for ln in proc.stdout.splitlines()
                                          if ln.startswith("n ")]
    print(f"qemu-m3: {streamed:,} instructions per inference streamed ({read:,} bytes read), {resident:,} resident")
    assert none == 0 and read > 10_000 and resident < streamed
