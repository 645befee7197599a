"""boards/unix/main.py runs under MicroPython with the golden blob and predicts what the host predicts."""
from pathlib import Path

import numpy as np

from microdx import blob_reader, emulator, reference

ROOT = Path(__file__).parents[1]


def test_example_main_runs_on_the_unix_port():
    blob = ROOT / "tests" / "golden" / "tiny_i8.dxb"
    proc = emulator.run_script(ROOT / "boards" / "unix" / "main.py", [blob], heap=64 * 1024)
    assert proc.returncode == 0, proc.stderr
    graph = blob_reader.read(blob).graph
    expected = reference.run(graph, np.array([[0.1 * i for i in range(4)]]))[0]
    label = graph.labels[int(np.argmax(expected))]
    assert f"class {label} p=" in proc.stdout and f"scores {list(map(int, expected))}" in proc.stdout
