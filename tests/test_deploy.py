"""`microdx deploy` through the real mpremote (its Python API) to the MicroPython unix port behind a pseudo-terminal
(tests/helpers.PtyBoard): files arrive bit-identical, identical files are skipped, the deployed model runs on the
board with the host's outputs, an interrupted copy leaves the old model loadable, and bad ports or blobs are refused
with the reason."""
import hashlib
import json
import subprocess

import numpy as np
import pytest

from helpers import PtyBoard
from microdx import blob_reader, bundled, deploy, emulator, reference
from microdx.cli import main
from microdx.errors import DeviceError

RUN = """
import array, binascii, udx
m = udx.Model(%r)
x = array.array("b", bytes(%r))
print("out", binascii.hexlify(bytes(m.predict(x))).decode())
"""


def _on_board(port, code):
    """Run `code` on the board through the mpremote command line (as a user would)."""
    proc = subprocess.run([emulator._tool("mpremote"), "connect", port, "resume", "exec", code], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture
def board(tmp_path):
    (tmp_path / "board").mkdir()
    with PtyBoard(tmp_path / "board") as b:
        yield b


def test_deploy_copies_the_runtime_and_the_model_bit_identical_and_it_runs(board, capsys):
    blob = bundled.blob("speaker-jvowels", "rp2040")
    assert main(["deploy", str(blob), "--port", board.port, "--board", "unix", "--name", "model.dxb", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    want = deploy.files(blob, "unix")
    assert sorted(r["copied"]) == sorted([*want, "model.dxb"]) and r["skipped"] == []
    assert "udx/dense.mpy" in want and "udx/conv2d.mpy" not in want   # only the kernels the blob uses
    for remote, local in want.items():
        assert (board.folder / remote).read_bytes() == local.read_bytes(), remote
    assert (board.folder / "model.dxb").read_bytes() == blob.read_bytes()
    assert r["sha256"] == hashlib.sha256(blob.read_bytes()).hexdigest()
    assert not list(board.folder.rglob("*.new"))
    g = blob_reader.read(blob).graph
    out = _on_board(board.port, RUN % ("model.dxb", g.input_size))
    got = np.frombuffer(bytes.fromhex(out.split("out ")[1].split()[0]), np.int8)
    assert np.array_equal(got, reference.run(g, np.zeros((1, g.input_size), np.int8))[0])

    assert main(["deploy", str(blob), "--port", board.port, "--board", "unix", "--name", "model.dxb", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["copied"] == [] and sorted(again["skipped"]) == sorted([*want, "model.dxb"])


def test_an_interrupted_copy_leaves_the_old_model_loadable(board):
    old, new = bundled.blob("speaker-jvowels", "rp2040"), bundled.blob("speaker-jvowels", "tiny")
    deploy.deploy(old, board.port, board="unix", name="model.dxb")

    def cut(done, total):
        if done > total // 2:
            raise KeyboardInterrupt   # the cable pulled halfway through the new model

    with pytest.raises(KeyboardInterrupt):
        deploy.deploy(new, board.port, board="unix", name="model.dxb", progress=cut)
    assert (board.folder / "model.dxb").read_bytes() == old.read_bytes()
    partial = board.folder / "model.dxb.new"
    assert not partial.exists() or len(partial.read_bytes()) < len(new.read_bytes())
    g = blob_reader.read(old).graph
    assert "out " in _on_board(board.port, RUN % ("model.dxb", g.input_size))   # the old model still opens and runs
    r = deploy.deploy(new, board.port, board="unix", name="model.dxb")       # and a later deploy completes
    assert r["copied"] == ["model.dxb"] and (board.folder / "model.dxb").read_bytes() == new.read_bytes()


def test_deploy_with_main_copies_the_board_example(board):
    r = deploy.deploy(bundled.blob("speaker-jvowels", "tiny"), board.port, board="unix", name="model.dxb", main=True)
    assert "main.py" in r["copied"]
    assert (board.folder / "main.py").read_bytes() == (deploy.paths.repo_dir("boards") / "unix" /
                                                      "main.py").read_bytes()


def test_a_bad_port_or_blob_is_refused_with_the_reason(tmp_path, capsys):
    blob = bundled.blob("speaker-jvowels", "tiny")
    assert main(["deploy", str(blob), "--port", str(tmp_path / "no-such-port")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("microdx: DeployError: cannot open ") and "mpremote devs" in err, err
    bad = tmp_path / "bad.dxb"
    bad.write_bytes(blob.read_bytes()[:100])
    assert main(["deploy", str(bad), "--port", "/dev/null"]) == 2   # refused before any port is opened
    err = capsys.readouterr().err
    assert err.startswith("microdx: TruncatedError: ") and "bad.dxb" in err and "Traceback" not in err, err


def test_the_model_check_refuses_a_copy_the_board_holds_differently(board, monkeypatch):
    """A copy that arrives different (simulated: the host's expected hash is of other bytes) is removed, the old
    model kept, and the error says so."""
    old = bundled.blob("speaker-jvowels", "rp2040")
    deploy.deploy(old, board.port, board="unix", name="model.dxb")
    real = deploy.hashlib.sha256

    class Wrong:
        def __init__(self, data=b""):
            self.h = real(data + b"!")

        def hexdigest(self):
            return self.h.hexdigest()

    monkeypatch.setattr(deploy.hashlib, "sha256", Wrong)
    with pytest.raises(DeviceError, match="the old file was kept"):
        deploy.deploy(bundled.blob("speaker-jvowels", "tiny"), board.port, board="unix", name="model.dxb")
    assert (board.folder / "model.dxb").read_bytes() == old.read_bytes()
    assert not (board.folder / "model.dxb.new").exists()


ROM_RUN = """
import array, binascii, sys
sys.path.insert(0, "/rom/lib")
import udx
m = udx.Model("/rom/model.dxb")
x = array.array("b", bytes(%r))
print("out", m.in_place, m.flash_bytes_per_inference, binascii.hexlify(bytes(m.predict(x))).decode())
"""


def test_deploy_romfs_writes_an_image_the_board_runs_in_place(tmp_path, capsys):
    """Through the real `mpremote romfs deploy`, to the unix port given a ROMFS partition (helpers.ROMFS_BOARD: the
    unix port has vfs.VfsRom but no partition, and no firmware here has both): the image holds udx under lib/ and
    the model, every file checks on the board, and the model runs from /rom with its weights in place."""
    (tmp_path / "board").mkdir()
    blob = bundled.blob("speaker-jvowels", "rp2040")
    g = blob_reader.read(blob).graph
    with PtyBoard(tmp_path / "board", romfs_bytes=256 * 1024) as b:
        assert main(["deploy", str(blob), "--port", b.port, "--board", "unix", "--name", "model.dxb", "--romfs",
                     "--json"]) == 0
        r = json.loads(capsys.readouterr().out)
        assert r["model"] == "/rom/model.dxb" and "/rom/lib/udx/dense.mpy" in r["copied"]
        assert r["image_bytes"] > r["model_bytes"] and r["partition_bytes"] == 256 * 1024
        assert sorted(p.name for p in (tmp_path / "board").iterdir()) == ["romfs_board.py"]   # nothing on the fs
        out = _on_board(b.port, ROM_RUN % g.input_size).split("out ")[1].split()
        assert out[:2] == ["3", "0"]   # every layer in place: nothing copied from flash per inference
        got = np.frombuffer(bytes.fromhex(out[2]), np.int8)
        assert np.array_equal(got, reference.run(g, np.zeros((1, g.input_size), np.int8))[0])


def test_deploy_romfs_refuses_boards_without_room_with_the_reason(tmp_path, capsys):
    blob = bundled.blob("speaker-jvowels", "rp2040")
    (tmp_path / "plain").mkdir()
    with PtyBoard(tmp_path / "plain") as b:
        assert main(["deploy", str(blob), "--port", b.port, "--board", "unix", "--romfs"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("microdx: DeployError: the firmware on ") and "has no ROMFS" in err, err
    (tmp_path / "small").mkdir()
    with PtyBoard(tmp_path / "small", romfs_bytes=8 * 1024) as b:
        assert main(["deploy", str(blob), "--port", b.port, "--board", "unix", "--romfs"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("microdx: BudgetError: the ROMFS image (") and "short by" in err, err
