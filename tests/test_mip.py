"""mip packaging: device/package.json lists the runtime, and `mpremote mip install` from a local path installs a
runtime that runs a model (the unix port behind a pseudo-terminal, tests/helpers.PtyBoard)."""
import json
import subprocess

import numpy as np

from helpers import PtyBoard
from microdx import blob_reader, bundled, emulator, paths, reference


def test_package_json_lists_every_runtime_file_and_nothing_else():
    pkg = json.loads((paths.repo_dir("device") / "package.json").read_text())
    listed = sorted(dest for dest, _ in pkg["urls"])
    assert listed == sorted(f"udx/{p.name}" for p in (paths.repo_dir("device") / "udx").glob("*.py"))
    assert all(dest == src for dest, src in pkg["urls"]) and pkg["version"]


def test_mip_install_from_a_local_path_installs_a_working_runtime(tmp_path):
    (tmp_path / "board").mkdir()
    blob = bundled.blob("speaker-jvowels", "rp2040")
    (tmp_path / "board" / "model.dxb").write_bytes(blob.read_bytes())
    mpremote = emulator._tool("mpremote")
    with PtyBoard(tmp_path / "board") as board:
        proc = subprocess.run([mpremote, "connect", board.port, "resume", "mip", "install", "--target", "lib",
                               str(paths.repo_dir("device") / "package.json")], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for p in (paths.repo_dir("device") / "udx").glob("*.py"):
            assert (tmp_path / "board" / "lib" / "udx" / p.name).read_bytes() == p.read_bytes(), p.name
        g = blob_reader.read(blob).graph
        code = ("import sys\nsys.path.insert(0, 'lib')\nimport array, binascii, udx\nm = udx.Model('model.dxb')\n"
                f"print('out', binascii.hexlify(bytes(m.predict(array.array('b', bytes({g.input_size}))))).decode())")
        proc = subprocess.run([mpremote, "connect", board.port, "resume", "exec", code], capture_output=True,
                              text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = np.frombuffer(bytes.fromhex(proc.stdout.split("out ")[1].split()[0]), np.int8)
    assert np.array_equal(got, reference.run(g, np.zeros((1, g.input_size), np.int8))[0])
