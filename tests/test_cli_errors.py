"""Every bad input a user can give the CLI, run as a real `microdx` subprocess: exit status 2, exactly one stderr line
`microdx: ErrorName: message` naming the culprit, no traceback anywhere, and nothing left in the output folder.

To add a case: add a row to CASES (and, if it needs a new file, a writer to FILES). In argv, {d} is the folder of
FILES and of the good model/blob/data, {out} an empty folder of the case's own (also its working directory).
"""
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from microdx import blob_writer, data
from microdx.importers import npz
from microdx.synthetic import random_graph, random_int8


def _savez(**arrays):
    return lambda p: np.savez(p, **arrays)


def _text(content):
    return lambda p: p.write_text(content)


def _fixture(name):
    from pathlib import Path
    return lambda p: p.write_bytes((Path(__file__).parent / "fixtures" / name).read_bytes())


def _good_model(p):
    g = random_graph([16, 12, 4], seed=5)
    npz.save(p, [("dense", {"w": g.layers[0].tensors["w"], "b": g.layers[0].tensors["b"]}), ("relu", {}),
                 ("dense", {"w": g.layers[1].tensors["w"], "b": g.layers[1].tensors["b"]})],
             labels=["a", "b", "c", "d"], name="good")


def _blob(sizes):
    def write(p):
        g = random_int8(sizes, seed=3)[0]
        g.labels = ["a", "b", "c", "d"][:sizes[-1]]
        blob_writer.write(g, p)
    return write


def _npy(p):
    with open(p, "wb") as f:
        np.save(f, np.zeros((2, 16)))


def _onnx(nodes, outputs, **consts):
    """A small ONNX model on a (N, 16) input 'x' with float constants."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def write(p):
        graph = helper.make_graph(
            nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["N", 4]) for o in outputs],
            [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()])
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), p)
    return write


def _node(op, ins, out, name, **attrs):
    from onnx import helper
    return helper.make_node(op, ins, [out], name=name, **attrs)


W = np.random.default_rng(1).normal(size=(4, 16))
X = np.random.default_rng(0).normal(size=(6, 16))
# name -> writer(path): the files the cases refer to as {d}/name
FILES = {
    "m.npz": _good_model,
    "m.dxb": _blob([16, 12, 4]),
    "big.dxb": _blob([16, 3000, 4]),             # an 85 KB blob: more than stm32f411's 64 KB filesystem holds
                                                 # beside udx
    "f32.dxb": lambda p: blob_writer.write(random_graph([16, 12, 4], seed=5), p),
    "good.npz": _savez(x=X, y=np.array([0, 1, 2, 3, 0, 1])),
    "no-labels.npz": _savez(x=X),
    "text.npz": _text("x,y\n1,2\n"),
    "empty-file.npz": _text(""),
    "single.npz": _npy,
    "objects.npz": _savez(x=np.array([[1, "a"], [2, None]], dtype=object)),
    "strings.npz": _savez(x=np.array([["a", "b"]])),
    "nan.npz": _savez(x=np.where(np.arange(96).reshape(6, 16) == 37, np.nan, X)),
    "inf.npz": _savez(x=np.where(np.arange(96).reshape(6, 16) == 20, np.inf, X)),
    "no-rows.npz": _savez(x=np.zeros((0, 16)), y=np.zeros(0, int)),
    "no-x.npz": _savez(features=X),
    "both.npz": _savez(x=X, x_q=X.astype(np.int8)),
    "xq-int16.npz": _savez(x_q=X.astype(np.int16)),
    "xq.npz": _savez(x_q=X.astype(np.int8)),
    "narrow.npz": _savez(x=X[:, :15]),
    "y-float.npz": _savez(x=X, y=np.arange(6) / 2),
    "y-short.npz": _savez(x=X, y=np.arange(5) % 4),
    "y-onehot.npz": _savez(x=X, y=np.eye(6, 4, dtype=int)),
    "y-index-out.npz": _savez(x=X, y=np.array([0, 1, 2, 3, 7, 1])),
    "y-name-unknown.npz": _savez(x=X, y=np.array(["a", "b", "c", "d", "e", "a"])),
    "notes.dxb": _text("these are not the weights you are looking for\n"),
    "short.dxb": _text("uDXB"),
    "folder": lambda p: p.mkdir(),
    "text.onnx": _text("not a protobuf at all\n"),
    "junk.tflite": _text("not a flatbuffer\n"),
    "int8.tflite": _fixture("tflite/mlp.tflite"),
    "nan-weights.npz": _savez(kinds=np.array(["dense"]), **{"0.w": np.where(W > 2, np.nan, W)}),
    "object-weights.npz": _savez(kinds=np.array(["dense"]), **{"0.w": W.astype(object)}),
    "two-unsupported.onnx": _onnx([_node("Gemm", ["x", "w"], "h", "fc", transB=1), _node("Tanh", ["h"], "t", "squash"),
                                   _node("LeakyRelu", ["t"], "y", "leaky")], ["y"], w=W),
    "two-outputs.onnx": _onnx([_node("Gemm", ["x", "w"], "h", "fc", transB=1), _node("Relu", ["h"], "y", "relu")],
                              ["h", "y"], w=W),
    "gemm-backwards.onnx": _onnx([_node("Gemm", ["w", "x"], "y", "backwards", transB=1)], ["y"], w=W),
    "scale-after-relu.onnx": _onnx([_node("Gemm", ["x", "w"], "h", "fc", transB=1), _node("Relu", ["h"], "r", "relu"),
                                    _node("Mul", ["r", "k"], "y", "rescale")], ["y"], w=W, k=[1.0, 2.0, 3.0, 4.0]),
    "plain-file": _text("a file, not a folder\n"),
}

# (case, argv, text the one-line error must contain: the culprit)
CASES = [
    # data files
    ("data: text file named .npz", ["run", "{d}/m.dxb", "--input", "{d}/text.npz"], "text.npz is not an .npz file"),
    ("data: empty file", ["eval", "{d}/m.dxb", "--data", "{d}/empty-file.npz"], "empty-file.npz is not an .npz file"),
    ("data: a folder", ["eval", "{d}/m.dxb", "--data", "{d}/folder"], "folder is a directory"),
    ("data: missing", ["run", "{d}/m.dxb", "--input", "{d}/missing.npz"], "missing.npz"),
    ("data: single .npy", ["run", "{d}/m.dxb", "--input", "{d}/single.npz"], "single.npz holds a single .npy"),
    ("data: object x", ["run", "{d}/m.dxb", "--input", "{d}/objects.npz"], "objects.npz: array 'x'"),
    ("data: string x", ["eval", "{d}/m.dxb", "--data", "{d}/strings.npz"], "strings.npz: x has dtype <U1"),
    ("data: NaN in eval data", ["eval", "{d}/m.dxb", "--data", "{d}/nan.npz"],
     "nan.npz: x holds nan at row 2, column 5"),
    ("data: Inf in run input", ["run", "{d}/m.dxb", "--input", "{d}/inf.npz"],
     "inf.npz: x holds inf at row 1, column 4"),
    ("data: NaN in calibration", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--calib", "{d}/nan.npz"],
     "nan.npz: x holds nan at row 2, column 5"),
    ("data: no rows, run", ["run", "{d}/m.dxb", "--input", "{d}/no-rows.npz"], "no-rows.npz: x has shape (0, 16)"),
    ("data: no rows, eval", ["eval", "{d}/m.dxb", "--data", "{d}/no-rows.npz"], "no-rows.npz: x has shape (0, 16)"),
    ("data: no rows, eval --device", ["eval", "{d}/m.dxb", "--data", "{d}/no-rows.npz", "--device"], "no-rows.npz"),
    ("data: no rows, calibration", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--calib", "{d}/no-rows.npz"],
     "no-rows.npz"),
    ("data: no x", ["run", "{d}/m.dxb", "--input", "{d}/no-x.npz"], "no-x.npz: no 'x' array (found: features)"),
    ("data: x and x_q", ["run", "{d}/m.dxb", "--input", "{d}/both.npz"], "both.npz holds 'x' and 'x_q': keep one"),
    ("data: x_q not int8", ["run", "{d}/m.dxb", "--input", "{d}/xq-int16.npz"], "xq-int16.npz: x_q has dtype int16"),
    ("data: x_q for a float blob", ["run", "{d}/f32.dxb", "--input", "{d}/xq.npz"], "xq.npz holds x_q"),
    ("data: x_q to calibrate", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--calib", "{d}/xq.npz"],
     "xq.npz holds x_q"),
    ("data: x_q with --source", ["eval", "{d}/m.dxb", "--data", "{d}/xq.npz", "--source", "{d}/m.npz"],
     "xq.npz holds x_q"),
    ("data: too few features", ["run", "{d}/m.dxb", "--input", "{d}/narrow.npz"],
     "narrow.npz: x has 15 features per row; the model expects 16"),
    ("data: too few features to calibrate", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--calib",
                                             "{d}/narrow.npz"], "narrow.npz: x has 15 features"),
    ("labels: float y", ["eval", "{d}/m.dxb", "--data", "{d}/y-float.npz"], "y-float.npz: y has dtype float64"),
    ("labels: y too short", ["eval", "{d}/m.dxb", "--data", "{d}/y-short.npz"], "y-short.npz: y has shape (5,)"),
    ("labels: one-hot y", ["eval", "{d}/m.dxb", "--data", "{d}/y-onehot.npz"], "y-onehot.npz: y has shape (6, 4)"),
    ("labels: index out of range", ["eval", "{d}/m.dxb", "--data", "{d}/y-index-out.npz"],
     "y-index-out.npz: y[4] = 7 is not a class index"),
    ("labels: unknown class name", ["eval", "{d}/m.dxb", "--data", "{d}/y-name-unknown.npz"],
     "y-name-unknown.npz: y[4] = 'e' is not one of the blob's labels"),
    # blobs
    ("blob: text file named .dxb", ["inspect", "{d}/notes.dxb"], "notes.dxb: not a .dxb blob"),
    ("blob: truncated", ["run", "{d}/short.dxb", "--input", "{d}/good.npz"], "short.dxb: file is 4 bytes"),
    ("blob: a folder", ["inspect", "{d}/folder"], "folder"),
    ("blob: missing", ["eval", "{d}/missing.dxb", "--data", "{d}/good.npz"], "missing.dxb"),
    # models and the output file
    ("model: missing", ["convert", "{d}/missing.npz", "-o", "{out}/m.dxb", "--float"], "missing.npz"),
    ("model: a folder", ["convert", "{d}/folder", "-o", "{out}/m.dxb", "--float"], "folder"),
    ("model: text file named .onnx", ["convert", "{d}/text.onnx", "-o", "{out}/m.dxb", "--float"],
     "ModelFileError: {d}/text.onnx is not a readable ONNX model"),
    ("model: not a .tflite", ["convert", "{d}/junk.tflite", "-o", "{out}/m.dxb", "--float"],
     "ModelFileError: {d}/junk.tflite: not a .tflite file"),
    ("model: int8 .tflite asked for a float blob", ["convert", "{d}/int8.tflite", "-o", "{out}/m.dxb", "--float"],
     "is an int8 model: microdx keeps its quantization as it is, so --float cannot apply"),
    ("model: NaN weight in .npz", ["convert", "{d}/nan-weights.npz", "-o", "{out}/m.dxb", "--float"],
     "node 'dense0': tensor 'w' holds nan at index"),
    ("model: object array in .npz", ["convert", "{d}/object-weights.npz", "-o", "{out}/m.dxb", "--float"],
     "object-weights.npz: array '0.w' cannot be read"),
    ("model: two unsupported ONNX ops, both named", ["convert", "{d}/two-unsupported.onnx", "-o", "{out}/m.dxb",
                                                     "--float"],
     "2 node(s) cannot be converted: node 'squash' uses op 'Tanh' (instead: ReLU"),
    ("model: two ONNX outputs", ["convert", "{d}/two-outputs.onnx", "-o", "{out}/m.dxb", "--float"],
     "declares 2 outputs ('h', 'y')"),
    ("model: Gemm with the constant first", ["convert", "{d}/gemm-backwards.onnx", "-o", "{out}/m.dxb", "--float"],
     "node 'backwards' (Gemm): the constant is the first operand"),
    ("model: scale after the last ReLU", ["convert", "{d}/scale-after-relu.onnx", "-o", "{out}/m.dxb", "--float"],
     "node 'rescale': an elementwise scale/shift after a ReLU cannot be folded"),
    ("convert: unknown recipe knob", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--float", "--recipe",
                                      "svd:size=3"], "optimizer 'svd' has no knob size"),
    ("convert: unknown optimizer", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--float", "--recipe", "zip:level=9"],
     "unknown optimizer 'zip'"),
    ("sweep: a bad recipe in the grid", ["sweep", "{d}/m.npz", "--data", "{d}/good.npz", "--out", "{out}",
                                         "--recipe", "svd:rank=-2"], "svd: rank=-2 must be a positive integer"),
    ("sweep: data without labels", ["sweep", "{d}/m.npz", "--data", "{d}/no-labels.npz", "--out", "{out}",
                                    "--recipe", ""], "no-labels.npz: sweep needs real-valued x and labels y"),
    ("convert: --max-loss without --board", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--data", "{d}/good.npz",
                                             "--max-loss", "1"], "--max-loss (auto-fit) needs --board and --data"),
    ("model: --source missing", ["eval", "{d}/m.dxb", "--data", "{d}/good.npz", "--source", "{d}/missing.onnx"],
     "missing.onnx"),
    ("convert: --board check with a budget below the model's", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb",
                                                                 "--float", "--board", "rp2040", "--budget", "10"],
     "BudgetError: model needs at least"),
    ("convert: float16 storage in an int8 blob", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb", "--calib",
                                                  "{d}/good.npz", "--recipe", "f16"],
     "QuantizationError: layer(s) dense0, dense2 are marked for float16 storage (recipe step f16), which is for float"),
    ("convert: int8 without --calib", ["convert", "{d}/m.npz", "-o", "{out}/m.dxb"], "--calib"),
    ("output: -o is a folder", ["convert", "{d}/m.npz", "-o", "{out}", "--float"], "is a folder"),
    ("output: folder does not exist", ["convert", "{d}/m.npz", "-o", "{out}/no/such/m.dxb", "--float"],
     "no/such: no such folder"),
    ("output: folder is a file", ["convert", "{d}/m.npz", "-o", "{d}/plain-file/m.dxb", "--float"],
     "plain-file: is a file, not a folder"),
    ("output: folder not writable", ["convert", "{d}/m.npz", "-o", "/proc/m.dxb", "--float"], "/proc"),
    # options
    ("option: --heap 0", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--heap", "0"], "argument --heap"),
    ("option: --heap negative", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--heap=-64K"], "'-64K'"),
    ("option: --heap missing its size", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--heap"], "--heap"),
    ("option: --heap nonsense", ["eval", "{d}/m.dxb", "--data", "{d}/good.npz", "--heap", "lots"], "'lots'"),
    ("option: --budget -1", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--budget", "-1"], "argument --budget"),
    ("option: --budget 0", ["inspect", "{d}/m.dxb", "--budget", "0"], "argument --budget"),
    ("option: --limit 0", ["eval", "{d}/m.dxb", "--data", "{d}/good.npz", "--limit", "0"], "argument --limit"),
    ("option: unknown board", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--board", "esp99"],
     "unknown board 'esp99'; known boards: circuitpython-pico, rp2040"),
    ("option: missing --input", ["run", "{d}/m.dxb"], "--input"),
    ("option: unknown command", ["frobnicate"], "frobnicate"),
    # the emulated board refuses
    ("board: blob larger than the flash", ["run", "{d}/big.dxb", "--input", "{d}/good.npz", "--board", "stm32f411"],
     "big.dxb takes"),
    ("board: eval --device, larger than the flash", ["eval", "{d}/big.dxb", "--data", "{d}/good.npz", "--device",
                                                     "--board", "stm32f411"], "stm32f411's 65,536-byte filesystem"),
    ("board: heap too small for udx", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--heap", "16K"],
     "heap 16,384 bytes is too small"),
    ("board: heap too small to start the interpreter", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--heap", "1"],
     "heap 1 bytes is too small"),
    ("board: heap beyond emulation", ["eval", "{d}/m.dxb", "--data", "{d}/good.npz", "--device", "--heap", "9000M"],
     "heap 9,437,184,000 bytes"),
    ("board: budget below the model's minimum", ["run", "{d}/m.dxb", "--input", "{d}/good.npz", "--budget", "10"],
     "short by"),
]

ONE_LINE = re.compile(r"microdx: [A-Z][A-Za-z]+: \S.*")


def _microdx(argv, cwd):
    proc = subprocess.run([sys.executable, "-m", "microdx.cli", *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once, four at a time: {case: (exit status, stdout, stderr, files left in {out})}."""
    d = tmp_path_factory.mktemp("files")
    for name, write in FILES.items():
        write(d / name)
    before = sorted(os.listdir(d))
    outs = {}
    for i, (case, argv, _) in enumerate(CASES):
        outs[case] = tmp_path_factory.mktemp(f"case{i}")

    def one(case_argv):
        case, argv = case_argv
        out = outs[case]
        code, stdout, stderr = _microdx([a.format(d=d, out=out) for a in argv], out)
        return case, (code, stdout, stderr, sorted(os.listdir(out)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        done = dict(pool.map(one, [(c, a) for c, a, _ in CASES]))
    assert sorted(os.listdir(d)) == before, "a case left a file beside the inputs"
    done["__files__"] = d
    return done


@pytest.mark.parametrize("case,argv,culprit", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line(results, case, argv, culprit):
    code, stdout, stderr, left = results[case]
    assert "Traceback" not in stdout + stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and ONE_LINE.fullmatch(lines[0]), stderr
    assert culprit.replace("{d}", "") in lines[0].replace(str(results["__files__"]), ""), lines[0]
    assert code == 2, (code, stderr)
    assert left == [], f"left behind: {left}"


def test_table_covers_every_file():
    used = " ".join(" ".join(argv) for _, argv, _ in CASES)
    assert [f for f in FILES if "{d}/" + f not in used] == []


def test_good_inputs_pass_the_same_checks(tmp_path):
    """The good files of the table do work, so each bad case fails for its own reason."""
    for name in ("m.npz", "m.dxb", "good.npz"):
        FILES[name](tmp_path / name)
    code, out, err = _microdx(["eval", str(tmp_path / "m.dxb"), "--data", str(tmp_path / "good.npz")], tmp_path)
    assert code == 0 and err == "", err
    assert data.load(tmp_path / "good.npz").x.shape == (6, 16)
