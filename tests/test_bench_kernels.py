"""`microdx bench kernels`: every kernel and backend bit-exact on every emulated MCU present, viper far cheaper than
pure Python where a viper twin exists, the JSON keys the benchmark promises, and latency estimates from the boards'
profiles. Figures are printed (pytest -s), not asserted beyond the ceilings that guard a result."""
import json

from microdx import cli, qemu


def test_bench_kernels_json(capsys):
    assert cli.main(["bench", "kernels", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    kernels = {k["kernel"]: k for k in r["kernels"]}
    assert set(kernels) == {"dense", "sparse-u8", "sparse-u16", "codebook", "dense16", "conv2d"}
    for k in kernels.values():
        assert k["unix"]["viper"]["matches_host"] and k["unix"]["python"]["matches_host"], k["kernel"]
        assert k["unix"]["speedup_viper_vs_pure"] > 0 and k["unix"]["peak_heap_bytes"] > 0
        assert k["unix"]["host_numpy_s_per_inference"] > 0 and k["unix"]["viper_time_vs_numpy"] > 0
        for target in r["targets"]:
            assert all(k[target][b]["matches_host"] for b in ("asm", "viper", "python")), (k["kernel"], target)
        for target, backends in (("micropython-ulab", ("ulab", "viper", "python")), ("circuitpython", ("ulab", "python"))):
            if target in k:   # the ulab firmwares, where present
                assert all(k[target][b]["matches_host"] for b in backends), (k["kernel"], target)
                assert k[target]["speedup_ulab_vs_pure"] > 0
    for target in r["targets"]:
        for name in ("dense", "sparse-u8", "sparse-u16", "conv2d", "codebook", "dense16"):   # every kernel has a twin
            per = kernels[name][target]
            assert per["viper"]["instructions_per_mac"] * 10 < per["python"]["instructions_per_mac"], (name, target)
        assert kernels["dense"][target]["viper"]["instructions_per_mac"] <= 40   # 256 inputs: row costs weigh more
        assert kernels["dense"][target]["asm"]["instructions_per_mac"] <= 28     # the Thumb inner loop (20-24)
    if qemu.available("qemu-m0"):
        est = r["latency_estimate"]["rp2040"]
        assert est["qemu_target"] == "qemu-m0" and est["estimated_us_per_inference"]["dense"] > 0
    print(json.dumps({k: {t: k_[t]["viper"]["instructions_per_mac"] for t in r["targets"]}
                      for k, k_ in kernels.items()}))
