"""`microdx demo`: the bundled models on an emulated RP2040; with FSDD present, audio -> label on the device."""
import json
import shutil
import subprocess

import pytest

from microdx.datasets import fsdd


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    exe = shutil.which("microdx")
    assert exe, "console script missing: pip install -e '.[dev]'"
    proc = subprocess.run([exe, "demo", "--json", "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), out


def test_demo_runs_the_bundled_models_with_device_equal_to_host(report):
    r, _ = report
    assert [m["model"] for m in r["models"]] == ["kws-digits", "speaker-fsdd", "speaker-jvowels"]
    for m in r["models"]:
        assert m["mismatches"] == 0 and m["device_accuracy"] == m["accuracy"], m
        assert m["peak_heap_bytes"] < m["heap_bytes"] == 192 * 1024
    kws, spk, jv = r["models"]
    assert kws["count"] == 300 and kws["accuracy"] >= 0.98
    assert spk["accuracy"] >= 0.99 and jv["accuracy"] >= 0.97


@pytest.mark.skipif(not (fsdd.DEFAULT / "recordings").is_dir(), reason="needs ../shared/data/fsdd")
def test_demo_classifies_the_test_recordings_from_audio_on_the_device(report):
    r, out = report
    a = r["audio"]
    assert a["clips"] == 300 and a["mismatches"] == 0 and a["device_accuracy"] == a["host_accuracy"]
    assert a["device_accuracy"] == r["models"][0]["accuracy"]   # the committed features are these recordings'
    png = out / "kws_confusion.png"
    assert a["confusion_png"] == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_text_report(capsys):
    from microdx import cli

    assert cli.main(["demo", "--data", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    assert "on an emulated rp2040" in out and "| 0/300 |" in out and "| 0/370 |" in out
    assert "no FSDD recordings at /nonexistent" in out
