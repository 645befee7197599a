"""`microdx bench kernels`: every int8 kernel with every backend, measured where the figures are not noise.

Each kernel runs as a one-layer model of a typical size (KERNELS below). On the emulated Cortex-M targets
(../shared/targets/qemu-m3, -m0 for the RP2040's instruction set, -m33 for the RP2350's), QEMU counts instructions
exactly: instructions per MAC for each backend, streaming from /flash and requantization included, and whether the
outputs equal the host reference. On the unix port (this PC: noisy, so only a ratio from one run): the viper/pure
speed ratio, the peak heap and how many times numpy's host reference (C speed) is faster than viper; on ../shared/targets/micropython-ulab and circuitpython (float32, no native code),
the ulab backend against the others, as ratios from one run. Latency per board is an estimate: instructions on the board's target x its assumed
cycles per instruction / its clock (boards/*/profile.json: qemu_target, assumed_cycles_per_instruction, clock_hz).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

BACKENDS = ("viper", "python")              # on the unix port
ARM_BACKENDS = ("asm", "viper", "python")    # on the Cortex-M targets (asm: Arm Thumb inner loops where a kernel has one)
BUDGET = 16384            # bytes: every kernel streams its weights in tiles through this much RAM
TARGETS = ("qemu-m3", "qemu-m0", "qemu-m33")
LATENCY_BOARDS = ("rp2040", "rp2350", "stm32f405", "stm32f411")
# unix-port firmwares with ulab: (path, whether it runs the .py sources, the backends it has)
ULAB_TARGETS = {"micropython-ulab": ("micropython-ulab", False, ("ulab", "viper", "python")),
                "circuitpython": ("circuitpython", True, ("ulab", "python"))}
NAMES = ("dense", "sparse-u8", "sparse-u16", "codebook", "dense16", "conv2d")   # _models(), in this order

SCRIPT = """
import array, binascii, time, udx
for name, n_in in JOBS:
    m = udx.Model(FOLDER + name + ".dxb", BUDGET)
    x = array.array("b", open("/flash/" + name + ".bin", "rb").read())
    for b in BACKENDS:
        udx.use_backend(b)
        m.predict(x)
        t0 = time.ticks_us()
        y = m.predict(x)
        t = time.ticks_diff(time.ticks_us(), t0)
        print("k", name, b, t * 1000, m.macs, binascii.hexlify(bytes(y)).decode())
    m.close()
"""


def _models() -> dict:
    """name -> (int8 graph, what it is): one layer each, after an input of realistic width."""
    from microdx.ir import canonicalize
    from microdx.optimizers import get
    from microdx.quantize import quantize_graph
    from microdx.synthetic import random_graph

    rng = np.random.default_rng(0)

    def q(graph, recipe=None):
        for name, knobs in recipe or ():
            graph = get(name, **knobs).apply(graph).graph
        x = rng.normal(size=(64, graph.input_size))
        return quantize_graph(graph, x)[0]

    conv = canonicalize("conv", (12, 12, 8), [("conv2d", "c", {"w": rng.normal(size=(12, 3, 3, 8)) / 8,
                                                               "b": rng.normal(size=12) * 0.1,
                                                               "pad": np.array([1, 1, 1, 1])}), ("relu", "r", {})])
    return {
        "dense": (q(random_graph([256, 256], seed=1)), "int8 dense 256x256"),
        "sparse-u8": (q(random_graph([256, 256], seed=2), [("prune", {"sparsity": 0.8})]),
                      "CSR 256x256, 80% pruned, u8 indices"),
        "sparse-u16": (q(random_graph([512, 256], seed=3), [("prune", {"sparsity": 0.8})]),
                       "CSR 512x256, 80% pruned, u16 indices"),
        "codebook": (q(random_graph([256, 256], seed=4), [("kmeans", {"bits": 4})]), "4-bit codebook 256x256"),
        "dense16": (q(random_graph([256, 128], seed=5), [("int16", {})]), "int16 weights 256x128"),
        "conv2d": (q(conv), "conv 3x3, 12x12x8 -> 12x12x12, padding 1"),
    }


def run_target(target: str, models: dict, inputs: dict, backends=ARM_BACKENDS, budget=BUDGET,
               rom: bool = False) -> dict:
    """{model: {backend: {"instructions_per_mac", "instructions_per_inference", "matches_host"}}} on `target`, for
    models {name: (int8 graph, description)} and one int8 input row each; one QEMU boot for all. The blobs are
    streamed from /flash, or with `rom` opened from /rom, the target's memory-mapped ROMFS, where udx reads their
    weights in place."""
    from microdx import blob_writer, qemu, reference

    files, jobs = {}, []
    for name, (graph, _) in models.items():
        files[f"{name}.dxb"] = blob_writer.pack(graph)
        files[f"{name}.bin"] = inputs[name].tobytes()
        jobs.append((name, graph.input_size))
    # qemu.run_script aligns the blobs in the folder the target packs as /rom, for in-place use. Its /flash stream
    # copies from the same image, so /flash reads are aligned too, as on a board's block-aligned filesystem: measured
    # on the 650-1000-1000-6 dense model, 10.4 / 23.8 instructions per MAC (asm / viper) against 13.4 / 26.8 unaligned
    proc = qemu.run_script(target, f"JOBS = {jobs!r}\nBACKENDS = {tuple(backends)!r}\nBUDGET = {budget!r}\n"
                           f"FOLDER = {'/rom/' if rom else '/flash/'!r}\n" + SCRIPT, files, timeout=3600)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"{target} failed: {tail[0]}")
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[:1] != ["k"]:
            continue
        _, name, backend, instructions, macs, hexed = parts
        expected = reference.run(models[name][0], inputs[name][None, :])[0].astype(np.int8).tobytes().hex()
        out.setdefault(name, {})[backend] = {
            "instructions_per_inference": int(instructions),
            "instructions_per_mac": round(int(instructions) / int(macs), 1), "matches_host": hexed == expected}
    return out


def run(progress=None) -> dict:
    """Measure every kernel (see the module docstring); returns the report as a dict."""
    from microdx import blob_writer, emulator, qemu, reference
    from microdx.ops import op

    models = _models()
    rng = np.random.default_rng(1)
    inputs = {name: rng.integers(-128, 128, size=g.input_size).astype(np.int8) for name, (g, _) in models.items()}
    rows = {name: {"kernel": name, "what": what, "macs": sum(op(layer.kind).macs(layer) for layer in g.layers)}
            for name, (g, what) in models.items()}
    done = [0]

    def step():
        done[0] += 1
        if progress:
            progress(done[0])

    with tempfile.TemporaryDirectory(prefix="microdx-bench-") as tmp:
        for name, (graph, _) in models.items():
            blob = Path(tmp) / f"{name}.dxb"
            blob_writer.write(graph, blob)
            unix = {}
            x = np.repeat(inputs[name][None, :], 20, axis=0)
            expected = reference.run(graph, x)
            for backend in BACKENDS:
                r = emulator.run(blob, x, budget=BUDGET, backend=backend)
                unix[backend] = {"s_per_inference": r.stats["wall_s"] / len(x),
                                 "matches_host": bool((r.outputs == expected).all())}
                unix["peak_heap_bytes"] = r.stats["peak_heap_bytes"]
            unix["speedup_viper_vs_pure"] = round(unix["python"]["s_per_inference"] /
                                                  max(unix["viper"]["s_per_inference"], 1e-12), 1)
            t0 = time.perf_counter()   # the C-speed reference: numpy's integer path on this PC, same rows
            reference.run(graph, x)
            unix["host_numpy_s_per_inference"] = (time.perf_counter() - t0) / len(x)
            unix["viper_time_vs_numpy"] = round(unix["viper"]["s_per_inference"] /
                                                max(unix["host_numpy_s_per_inference"], 1e-12), 1)
            rows[name]["unix"] = unix
            rows[name].update(_ulab_targets(blob, x, expected))
            step()
    measured = []
    for target in TARGETS:
        if qemu.available(target):
            for name, per in run_target(target, models, inputs).items():
                rows[name][target] = per
                per["viper_vs_pure"] = round(per["python"]["instructions_per_mac"] /
                                             per["viper"]["instructions_per_mac"], 1)
                per["asm_vs_pure"] = round(per["python"]["instructions_per_mac"] /
                                           per["asm"]["instructions_per_mac"], 1)
            measured.append(target)
        step()
    latency = latency_estimates(rows, measured)
    return {"budget_bytes": BUDGET, "targets": measured, "kernels": list(rows.values()),
            "latency_estimate": latency,
            "note": "instruction counts are exact (QEMU -icount); latencies are estimates from an assumed cycles per "
                    "instruction (boards/*/profile.json); unix-port times are this PC's and only their ratio means anything"}


def _ulab_targets(blob, x, expected) -> dict:
    """{target: {backend: {"s_per_inference", "matches_host"}, "speedup_ulab_vs_pure"}} for the ULAB_TARGETS present
    (wall times of this PC, one run: only the ratio means anything)."""
    from microdx import emulator, qemu

    out = {}
    for target, (name, source, backends) in ULAB_TARGETS.items():
        exe = qemu.TARGETS / name
        if not exe.is_file():
            continue
        per = {}
        for backend in backends:
            r = emulator.run(blob, x, budget=BUDGET, backend=backend, firmware=exe, source=source, heap=512 * 1024)
            per[backend] = {"s_per_inference": r.stats["wall_s"] / len(x),
                            "matches_host": bool((r.outputs == expected).all())}
        per["speedup_ulab_vs_pure"] = round(per["python"]["s_per_inference"] /
                                            max(per["ulab"]["s_per_inference"], 1e-12), 1)
        out[target] = per
    return out


def latency_estimates(rows: dict, measured, best: str = "asm") -> dict:
    """Per board of LATENCY_BOARDS whose qemu_target was measured: microseconds per inference with backend `best`
    (what udx picks on an Arm build), estimated as instructions x the board's assumed cycles per instruction / its
    clock (boards/*/profile.json)."""
    from microdx import boards

    latency = {}
    for board in LATENCY_BOARDS:
        p = boards.load(board)
        if p["qemu_target"] not in measured:
            continue
        latency[board] = {"qemu_target": p["qemu_target"], "clock_hz": p["clock_hz"],
                          "assumed_cycles_per_instruction": p["assumed_cycles_per_instruction"],
                          "estimated_us_per_inference": {
                              name: round(rows[name][p["qemu_target"]][best]["instructions_per_inference"]
                                          * p["assumed_cycles_per_instruction"] / p["clock_hz"] * 1e6)
                              for name in rows}}
    return latency


def format_report(r: dict) -> str:
    """The report as tables: instructions per MAC per target and backend, the unix ratio, latency estimates."""
    targets = r["targets"]
    head = "| kernel | MACs | " + " | ".join(f"{t} asm | {t} viper | {t} pure" for t in targets) + \
           " | unix viper/pure | unix viper time / numpy | ulab/pure (micropython-ulab, circuitpython) | peak heap |"
    lines = [f"microdx bench kernels: one-layer models, budget {r['budget_bytes']:,} bytes, instructions per MAC "
             f"(streaming and requantization included; exact on QEMU)", "", head,
             "|" + "---|" * (6 + 3 * len(targets))]
    for k in r["kernels"]:
        cells = []
        for t in targets:
            for b in ARM_BACKENDS:
                m = k[t][b]
                cells.append(f"{m['instructions_per_mac']}" + ("" if m["matches_host"] else " (DIFFERS)"))
        ulab = ", ".join(f"{k[t]['speedup_ulab_vs_pure']}x" + ("" if all(
            k[t][b]["matches_host"] for b in ULAB_TARGETS[t][2]) else " (DIFFERS)") for t in ULAB_TARGETS if t in k)
        lines.append(f"| {k['kernel']} ({k['what']}) | {k['macs']:,} | " + " | ".join(cells) +
                     f" | {k['unix']['speedup_viper_vs_pure']}x | {k['unix']['viper_time_vs_numpy']}x | {ulab or 'absent'} | {k['unix']['peak_heap_bytes']:,} |")
    if r["latency_estimate"]:
        boards = list(r["latency_estimate"])
        lines += ["", "estimated latency per inference, asm backend (instructions x assumed cycles/instruction / clock):",
                  "", "| kernel | " + " | ".join(boards) + " |", "|" + "---|" * (1 + len(boards))]
        for k in r["kernels"]:
            lines.append(f"| {k['kernel']} | " + " | ".join(
                f"{r['latency_estimate'][b]['estimated_us_per_inference'][k['kernel']] / 1000:.1f} ms"
                for b in boards) + " |")
    lines += ["", r["note"]]
    return "\n".join(lines)
