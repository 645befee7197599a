"""ROMFS zero-copy: a blob in a memory-mapped ROMFS image (a file under /rom, MicroPython >= 1.25) has its weights
used where they are, by every int8 kernel and backend, bit-exact with the host reference; it needs less heap than
the same blob streamed from /flash. Checked on qemu-m3 and qemu-m0 (the targets' /rom is memory-mapped; qemu-m0 is
the RP2040's armv6m, which faults on unaligned halfword and word loads) and on the unix port (vfs.VfsRom over an
image in memory, which stands for flash and is not counted in its heap figures)."""
import numpy as np
import pytest

from helpers import run_mpy
from microdx import blob_writer, emulator, qemu, ram, reference, romfs
from microdx.synthetic import random_graph, random_int8
from microdx.optimizers import get
from microdx.quantize import quantize_graph
from test_backends import MODELS, _inputs

# every model of the backend tests: each layer kind, odd shapes (weights not a multiple of 4 bytes, so the biases
# after them are padded), tiles that do not divide the rows, u8 and u16 sparse indices, one-row budgets
SCRIPT = """
import array, binascii, udx
for name, budget, count in JOBS:
    for b in BACKENDS:
        udx.use_backend(b)
        m = udx.Model(FOLDER + name + ".dxb", budget)
        x = array.array("b", bytes(m.n_in))
        f = open(FOLDER + name + ".bin", "rb")
        for i in range(count):
            f.readinto(x)
            print("y", name, b, m.in_place, binascii.hexlify(bytes(m.predict(x))).decode())
        f.close()
        m.close()
"""


@pytest.fixture(scope="module")
def models():
    out = {}
    for name, (make, extra) in MODELS.items():
        g = make()
        out[name] = (g, ram.plan(g)["min_budget"] + extra, _inputs(g.input_size, rows=2))
    return out


def _csr(sizes, seed):
    """An int8 model pruned 80% (CSR layers), calibrated on its own random numbers: the same whatever ran before."""
    rng = np.random.default_rng(seed)
    g = get("prune", sparsity=0.8).apply(random_graph(sizes, seed=seed)).graph
    return quantize_graph(g, rng.normal(size=(64, sizes[0])))[0]


def _weighted_layers(graph) -> int:
    """Layers whose tensors udx can read in place: those with tensors, except TFLite-arithmetic ones (none here)."""
    return sum(1 for layer in graph.layers if layer.tensors and not layer.attrs.get("rq"))


def _check(stdout, models, backends, in_place=True):
    lines = [ln.split() for ln in stdout.splitlines() if ln.startswith("y ")]
    for name, (g, _, x) in models.items():
        for b in backends:
            got = [ln for ln in lines if ln[1] == name and ln[2] == b]
            assert len(got) == len(x), (name, b)
            assert {int(ln[3]) for ln in got} == {_weighted_layers(g) if in_place else 0}, (name, b)
            device = np.frombuffer(b"".join(bytes.fromhex(ln[4]) for ln in got), np.int8).reshape(len(x), -1)
            np.testing.assert_array_equal(device, reference.run(g, x), err_msg=f"{name} {b}")


@pytest.mark.parametrize("target", ["qemu-m3", "qemu-m0"])
def test_every_kernel_and_backend_runs_in_place_from_rom_on_the_mcus(models, target, tmp_path):
    if not qemu.available(target):
        pytest.skip(f"needs ../shared/targets/{target} and qemu-system-arm")
    files, jobs = {}, []
    for name, (g, budget, x) in models.items():
        files[f"{name}.dxb"] = blob_writer.pack(g)
        files[f"{name}.bin"] = x.tobytes()
        jobs.append((name, budget, len(x)))
    backends = ("asm", "viper", "python")
    script = f"JOBS = {jobs!r}\nBACKENDS = {backends!r}\nFOLDER = '/rom/'\n" + SCRIPT
    proc = qemu.run_script(target, script, files, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    _check(proc.stdout, models, backends)


def _unix_rom_script(image_path, jobs, backends):
    return (f"import vfs\nimg = bytearray(open({str(image_path)!r}, 'rb').read())\nvfs.mount(vfs.VfsRom(img), '/rom')\n"
            f"JOBS = {jobs!r}\nBACKENDS = {backends!r}\nFOLDER = '/rom/'\n" + SCRIPT)


def test_every_kernel_and_backend_runs_in_place_from_vfsrom_on_the_unix_port(models, tmp_path):
    files, jobs = {}, []
    for name, (g, budget, x) in models.items():
        files[f"{name}.dxb"] = blob_writer.pack(g)
        files[f"{name}.bin"] = x.tobytes()
        jobs.append((name, budget, len(x)))
    img = romfs.image(files)
    for name in models:
        assert romfs.data_offset(img, f"{name}.dxb", files[f"{name}.dxb"]) % 4 == 0
    (tmp_path / "rom.img").write_bytes(img)
    out = run_mpy(_unix_rom_script(tmp_path / "rom.img", jobs, ("viper", "python")), tmp_path, heap=4 << 20)
    _check("\n".join(out), models, ("viper", "python"))


def test_a_blob_placed_unaligned_by_mpremotes_builder_streams_with_the_same_outputs(models, tmp_path):
    """mpremote's `romfs build` puts a file's data at any byte: udx then streams the blob as from /flash (its
    kernels read halfwords and words, which a Cortex-M0+ faults on unaligned), and says so (in_place 0)."""
    from mpremote.romfs import make_romfs

    g, budget, x = models["sparse-u16"]
    data = blob_writer.pack(g)
    for pad in range(4):   # a file sorting first, of 0..3 bytes, shifts the blob; take a misaligned placement
        d = tmp_path / f"img{pad}"
        d.mkdir()
        (d / "a").write_bytes(bytes(pad))
        (d / "sparse-u16.dxb").write_bytes(data)
        (d / "sparse-u16.bin").write_bytes(x.tobytes())
        img = make_romfs(str(d), mpy_cross=False)
        if romfs.data_offset(img, "sparse-u16.dxb", data) % 4:
            break
    else:
        pytest.fail("no misaligned placement found")
    (tmp_path / "rom.img").write_bytes(img)
    one = {"sparse-u16": models["sparse-u16"]}
    out = run_mpy(_unix_rom_script(tmp_path / "rom.img", [("sparse-u16", budget, len(x))], ("viper",)), tmp_path)
    _check("\n".join(out), one, ("viper",), in_place=False)


def test_romfs_needs_less_heap_than_streaming_on_the_unix_port(tmp_path):
    """Measured on the rp2040 profile (256 KB heap), udx's default budget: a dense and an 80%-pruned CSR model."""
    dense, _ = random_int8([650, 256, 256, 6], seed=3)
    csr = _csr([650, 256, 256, 6], seed=4)
    x = np.random.default_rng(6).integers(-128, 128, size=(2, 650)).astype(np.int8)
    for name, g in (("dense", dense), ("csr", csr)):
        path = tmp_path / f"{name}.dxb"
        blob_writer.write(g, path)
        streamed = emulator.run(path, x, board="rp2040")
        mapped = emulator.run(path, x, board="rp2040", rom=True)
        np.testing.assert_array_equal(mapped.outputs, reference.run(g, x))
        np.testing.assert_array_equal(streamed.outputs, mapped.outputs)
        s, m = streamed.stats, mapped.stats
        print(f"unix {name}: peak heap {s['peak_heap_bytes']:,} streamed, {m['peak_heap_bytes']:,} from ROMFS; "
              f"flash bytes copied per inference {s['flash_bytes_per_inference']:,} -> "
              f"{m['flash_bytes_per_inference']:,}")
        assert m["in_place_layers"] == 3 and s["in_place_layers"] is None
        assert m["runtime_heap_bytes"] == s["runtime_heap_bytes"]
        # the scratch (16 KB by default) is gone, or down to 1.5 KB of CSR row pointers, biases and multipliers
        assert m["peak_heap_bytes"] <= s["peak_heap_bytes"] - 12 * 1024, (s, m)
        # in place, only CSR row pointers, biases and multipliers are still copied: 12 bytes a row, 4 more a tile
        rows = sum(layer.tensors["b"].shape[0] for layer in g.layers)
        assert m["flash_bytes_per_inference"] <= (0 if name == "dense" else 16 * rows), m


@pytest.mark.skipif(not qemu.available("qemu-m3"), reason="needs ../shared/targets/qemu-m3 and qemu-system-arm")
def test_romfs_needs_less_heap_than_streaming_on_cortex_m3(tmp_path):
    """On qemu-m3 (udx imported from /rom in both cases, so that only the blob's place differs): peak heap sampled
    after the open and every tile; and in a 40 KB heap, the streamed blob fails with MemoryError where the mapped
    one runs (measured: mapped runs in 36 KB, not in 32 KB; streamed fails even in 48 KB)."""
    g = _csr([650, 256, 256, 6], seed=4)
    path = tmp_path / "csr.dxb"
    blob_writer.write(g, path)
    x = np.random.default_rng(6).integers(-128, 128, size=(2, 650)).astype(np.int8)
    streamed = qemu.run(path, x, rom=True, blob_rom=False, peak=True)
    mapped = qemu.run(path, x, rom=True, blob_rom=True, peak=True)
    for r in (streamed, mapped):
        np.testing.assert_array_equal(r["outputs"], reference.run(g, x))
    print(f"qemu-m3 csr: peak heap {streamed['peak_heap_bytes']:,} streamed, {mapped['peak_heap_bytes']:,} mapped; "
          f"{streamed['instructions_per_mac']} -> {mapped['instructions_per_mac']} instructions per MAC")
    assert mapped["in_place_layers"] == 3 and streamed["in_place_layers"] is None
    assert mapped["peak_heap_bytes"] <= streamed["peak_heap_bytes"] - 12 * 1024
    assert mapped["instructions_per_mac"] < streamed["instructions_per_mac"]
    assert mapped["peak_heap_bytes"] <= 30 * 1024   # measured 28,800 (streamed 43,360)
    small = qemu.run(path, x[:1], rom=True, blob_rom=True, heap=40 * 1024)
    np.testing.assert_array_equal(small["outputs"], reference.run(g, x[:1]))
    with pytest.raises(emulator.DeviceError, match="MemoryError"):
        qemu.run(path, x[:1], rom=True, blob_rom=False, heap=40 * 1024)


def test_checks_still_hold_in_place(tmp_path):
    """A payload corrupted inside the image fails its CRC at open; sparse row pointers out of order are refused."""
    rng = np.random.default_rng(4)
    g = quantize_graph(get("prune", sparsity=0.85, min_inputs=1).apply(random_graph([64, 97, 10], seed=4)).graph,
                       rng.normal(size=(64, 64)))[0]
    data = bytearray(blob_writer.pack(g))
    data[-60] ^= 0xFF   # inside the last layer's biases or multipliers
    (tmp_path / "bad.dxb").write_bytes(bytes(data))
    with pytest.raises(emulator.DeviceError, match="CRC32 mismatch"):
        emulator.run(tmp_path / "bad.dxb", _inputs(64, 1), rom=True)
    ptr = g.layers[0].tensors["ptr"].astype(np.int64)
    bad = ptr.copy()
    bad[1], bad[2] = ptr[2], ptr[1]
    g.layers[0].tensors["ptr"] = bad.astype(np.int32)
    blob_writer.write(g, tmp_path / "ptr.dxb")
    for backend in ("viper", "python"):
        with pytest.raises(emulator.DeviceError, match="row pointer .* out of order"):
            emulator.run(tmp_path / "ptr.dxb", _inputs(64, 1), rom=True, backend=backend)

