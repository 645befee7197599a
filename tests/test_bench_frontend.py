"""`microdx bench frontend`: the front-end's instructions per frame on the emulated cores (its outputs equal the host
reference there) and the share of real time per board, as JSON; the viper frame is at least 10x cheaper than pure
Python, and at 8 kHz every board keeps up with the microphone."""
import json

from microdx import cli, qemu


def test_bench_frontend_json(capsys):
    assert cli.main(["bench", "frontend", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [s["setup"] for s in r["setups"]] == ["8k", "16k"]
    if not qemu.available("qemu-m3"):
        assert r["targets"] == [] and r["realtime_fraction"] == {}
        return
    for s in r["setups"]:
        for t in r["targets"]:
            assert s[t]["python"]["matches_host"] and s[t]["viper"]["matches_host"], (s["setup"], t)
            assert s[t]["viper"]["instructions_per_frame"] * 10 < s[t]["python"]["instructions_per_frame"]
    eight = r["setups"][0]["qemu-m3"]["viper"]["instructions_per_frame"]
    assert eight < 500_000, eight            # measured 429,750
    assert all(per["8k"]["viper"] < 1 for per in r["realtime_fraction"].values()), r["realtime_fraction"]
