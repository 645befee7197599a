"""The bundled models (models/<name>/): build each variant's blob from the committed float source and data, measure it
as a board runs it, and write the numbers the model card shows.

A model folder holds bundle.json (what to build, and the card's prose), the float source(s) (.onnx), calib.npz
(training rows for int8 calibration), test.npz (the held-out rows: derived features or their codes, never
recordings), labels.txt, train.json (what the training tool measured) and, written here, <variant>.dxb,
results.json and MODEL.md. Every figure in results.json is measured by `measure`: blob bytes, MACs, float /
int8-host / device accuracy with device mismatches (unix port with the board's heap), peak heap, flash fit,
instructions per inference on qemu-m3 / qemu-m0 / qemu-m33 and the latency estimated from them.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from microdx import paths


def folder(name: str) -> Path:
    return paths.repo_dir("models") / name


def names() -> list[str]:
    """Bundled models: the folders of models/ that hold a bundle.json."""
    return sorted(p.parent.name for p in paths.repo_dir("models").glob("*/bundle.json"))


def spec(name: str) -> dict:
    return json.loads((folder(name) / "bundle.json").read_text())


def results(name: str) -> dict:
    """The committed measurements (results.json) of a bundled model."""
    return json.loads((folder(name) / "results.json").read_text())


def labels(name: str) -> list[str]:
    return (folder(name) / "labels.txt").read_text(encoding="utf-8").rstrip("\n").split("\n")


def blob(name: str, variant: str) -> Path:
    return folder(name) / f"{variant}.dxb"


def build(name: str, fsdd_path=None, progress=print) -> None:
    """Convert every variant of `name` (bundle.json) from its committed source and calibration rows (calib.npz);
    a variant with "train": "fsdd" is calibrated and fine-tuned on the whole FSDD training split instead (takes
    5-49, features computed from the recordings at `fsdd_path`, labels bundle.json's "fsdd_labels": digit or
    speaker), which is too big to commit."""
    from microdx import data, pipeline

    s, d = spec(name), folder(name)
    calib = data.load(d / s.get("calib", "calib.npz"))
    train = None
    for v in s["variants"]:
        if v.get("train") == "fsdd" and train is None:
            train = _fsdd_train(s["fsdd_labels"], fsdd_path, labels(name))
        rows = train if v.get("train") == "fsdd" else calib
        r = pipeline.convert(d / v["source"], blob(name, v["name"]), calib=rows, recipe=v.get("recipe") or None,
                             frontend=s.get("frontend"), labels=labels(name))
        progress(f"{name}/{v['name']}.dxb: {r['blob_bytes']:,} bytes")


def _fsdd_train(by: str, path, names: list[str]):
    """The FSDD training split (takes 5-49) as Data: x = integer MFCCs / 256, y = digit or speaker index."""
    from microdx import data
    from microdx.datasets import fsdd
    from microdx.errors import MicrodxError

    if path is None:
        raise MicrodxError("this variant is fine-tuned on the FSDD training split: pass --data PATH to the FSDD "
                           "folder (holding recordings/)")
    f = fsdd.int_features(path)
    train = f["take"] >= 5
    y = f["digit"] if by == "digit" else np.array([names.index(str(s)) for s in f["speaker"]])
    return data.from_arrays(f["c"][train].reshape(int(train.sum()), -1) / 256.0, y[train], "FSDD training split")


def measure(name: str, qemu_targets=("qemu-m3", "qemu-m0", "qemu-m33"), fsdd=None, progress=print) -> dict:
    """Measure every variant's blob (see the module docstring). `fsdd`: the FSDD folder, for models whose test
    rows name their recordings (test.npz `name`): the device then also runs its front-end on those WAV files."""
    from microdx import bench_kernels, blob_reader, data, emulator, fit, pipeline, qemu
    from microdx.optimizers.base import graph_macs

    s, d = spec(name), folder(name)
    test = data.load(d / s.get("test", "test.npz"))
    pcm = test_recordings(name, fsdd) if s.get("frontend") and fsdd is not None else None
    out = {"model": name, "test_rows": int(len(test.rows)), "variants": {}}
    graphs, inputs = {}, {}
    for v in s["variants"]:
        path = blob(name, v["name"])
        g = blob_reader.read(path).graph
        graphs[v["name"]] = g
        r = pipeline.evaluate(path, test, device=True, board=v["board"], budget=v.get("budget"),
                              source=d / v["source"])
        row = {"source": v["source"], "recipe": v.get("recipe") or "", "board": v["board"],
               "heap_bytes": r["heap_bytes"], "blob_bytes": path.stat().st_size, "macs": graph_macs(g),
               "float_accuracy": r["float_accuracy"], "host_accuracy": r["accuracy"],
               "device_accuracy": r["device_accuracy"], "device_mismatches": r["mismatches"],
               "peak_heap_bytes": r["peak_heap_bytes"], "runtime_heap_bytes": r["runtime_heap_bytes"],
               "budget_bytes": r["budget_bytes"],
               "flash": fit.flash(path.stat().st_size, v["board"], fit.graph_kernels(g))}
        inputs[v["name"]] = pipeline.model_input(g, test)
        mapped = emulator.run(path, inputs[v["name"]][:1], board=v["board"], budget=v.get("budget"), rom=True)
        row["romfs"] = {k: mapped.stats[k] for k in ("peak_heap_bytes", "in_place_layers",
                                                       "flash_bytes_per_inference")}
        if v.get("small_heap"):
            row["small_heap"] = small_heap(path, inputs[v["name"]], v)
            if pcm is not None:   # the whole audio application: front-end, model and their buffers
                row["small_heap"]["with_frontend"] = frontend_heap(path, pcm[:20], v)
        out["variants"][v["name"]] = row
        progress(f"{name}/{v['name']}: host {row['host_accuracy']:.4f}, device {row['device_accuracy']:.4f}, "
                 f"{row['device_mismatches']} mismatches, peak heap {row['peak_heap_bytes']:,} B")
    measured = [t for t in qemu_targets if qemu.available(t)]
    for t in measured:
        per = bench_kernels.run_target(t, {k: (g, k) for k, g in graphs.items()},
                                       {k: x[0] for k, x in inputs.items()},
                                       backends=("asm", "viper"), budget=None)
        for k, row in per.items():
            out["variants"][k][t] = row
        progress(f"{name}: {t} measured")
    out["qemu_targets"] = measured
    out["latency_estimate"] = bench_kernels.latency_estimates(out["variants"], measured) if measured else {}
    if pcm is not None:
        out["audio"] = _audio(name, s, test, pcm, graphs, progress)
    return out


def test_recordings(name: str, fsdd) -> np.ndarray:
    """(N, samples) int16: the FSDD recordings test.npz's rows come from (its `name` array), each cut or padded to
    the samples the model's front-end takes."""
    from scipy.io import wavfile

    from microdx import audio, blob_reader

    s = spec(name)
    files = np.load(folder(name) / s.get("test", "test.npz"))["name"]
    e = blob_reader.read(blob(name, s["variants"][0]["name"])).graph.frontend
    n = audio.clip_samples(e)
    pcm = np.zeros((len(files), n), np.int16)
    for i, f in enumerate(files):
        clip = wavfile.read(Path(fsdd) / "recordings" / str(f))[1]
        pcm[i, :min(n, len(clip))] = clip[:n]
    return pcm


def _on_target(path, x, v: dict, heap: int | None) -> dict:
    """The blob on the variant's small-heap target (udx from ROMFS when "rom") for inputs `x`: int8 rows, or int16
    clips through its front-end; the heap in use at the end and the rows whose outputs differ from the host's."""
    from microdx import blob_reader, data, pipeline, qemu, reference

    h = v["small_heap"]
    r = qemu.run(path, x, target=h["target"], budget=v.get("budget"), heap=heap, rom=h.get("rom", False))
    g = blob_reader.read(path).graph
    want = reference.run(g, pipeline.model_input(g, data.Data("clips", None, None, None, x))
                         if x.dtype == np.int16 else x)
    return {"heap_used_bytes": r["heap_used_bytes"], "mismatches": int(np.sum(np.any(r["outputs"] != want, axis=1)))}


def small_heap(path, x, v: dict) -> dict:
    """A `tiny` variant on a 32-bit MCU with a small heap (variant "small_heap": target, heap bytes, rom): every row
    of `x` (the model's int8 inputs) on the QEMU target with the rest of its heap taken by a ballast, udx imported
    from the memory-mapped ROMFS when "rom" (its .mpy code then executes in place, as on boards with a ROMFS
    partition). Outputs are compared with the host reference: mismatches must be 0."""
    from microdx import qemu

    h = v["small_heap"]
    if not qemu.available(h["target"]):
        return {**h, "skipped": f"{h['target']} not available"}
    return {**h, "rows": int(len(x)), **_on_target(path, x, v, h["heap"]), "budget_bytes": v.get("budget")}


def frontend_heap(path, pcm, v: dict) -> dict:
    """Heap the blob needs with its front-end streaming audio on the small-heap target (udx from ROMFS as in
    small_heap, no ballast): the heap in use after the clips (interpreter, udx, model, front-end tables and buffers,
    one 256-sample chunk), and whether the outputs equal the host's."""
    return {"clips": int(len(pcm)), **_on_target(path, pcm, v, None)}


def _audio(name, s, test, pcm, graphs, progress) -> dict:
    """Each variant on the test recordings themselves (`pcm`): the device's front-end on the PCM (pushed in chunks),
    the host's integer reference of the same audio; labels and mismatches. The features in test.npz must be these."""
    from microdx import audio, data, pipeline

    e = next(iter(graphs.values())).frontend
    clips = data.Data("FSDD test recordings", None, None, test.y, pcm, e["rate"])
    feats = audio.features(pcm, e)
    committed = np.round(test.x * 256).astype(np.int64) if test.x is not None else None
    out = {"clips": int(len(pcm)), "features_equal_test_npz": bool(committed is not None
                                                                    and np.array_equal(feats, committed))}
    for k, g in graphs.items():
        v = next(v for v in s["variants"] if v["name"] == k)
        r = pipeline.evaluate(blob(name, k), clips, device=True, board=v["board"], budget=v.get("budget"))
        out[k] = {"host_accuracy": r["accuracy"], "device_accuracy": r["device_accuracy"],
                  "device_mismatches": r["mismatches"], "peak_heap_bytes": r["peak_heap_bytes"]}
        progress(f"{name}/{k} from audio: device {r['device_accuracy']:.4f}, {r['mismatches']} mismatches")
    return out


def write_results(name: str, r: dict) -> None:
    (folder(name) / "results.json").write_text(json.dumps(r, indent=1) + "\n")


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _romfs(v) -> str:
    r = v.get("romfs")
    return f"{r['peak_heap_bytes']:,} ({r['in_place_layers']} in place)" if r else "-"


def card(name: str, r: dict) -> str:
    """MODEL.md of a bundled model: bundle.json's prose (task, data, split, training, licence) and the figures of
    results.json `r`, each with the command that produced it."""
    s = spec(name)
    r = {**r, "variants": {v["name"]: r["variants"][v["name"]] for v in s["variants"]}}   # bundle.json's order
    train = json.loads((folder(name) / "train.json").read_text()) if (folder(name) / "train.json").exists() else {}
    lines = [f"# {s['title']}", "", s["summary"], "", "## Task and data", "", s["task"], "", s["data"], "",
             f"**Split.** {s['split']}", "", "## Training", "", s["training"].format(**train), ""]
    if s.get("training_figures"):
        lines += [s["training_figures"].format(**train), ""]
    lines += ["## Variants", "",
              "| variant | source | recipe | board (heap) | blob bytes | MACs | float | int8 host | device | "
              "mismatches | peak heap | from ROMFS |", "|" + "---|" * 12]
    for k, v in r["variants"].items():
        lines.append(f"| `{k}.dxb` | {v['source']} | {v['recipe'] or 'int8 only'} | {v['board']} "
                     f"({v['heap_bytes']:,}) | {v['blob_bytes']:,} | {v['macs']:,} | {_pct(v['float_accuracy'])} | "
                     f"{_pct(v['host_accuracy'])} | {_pct(v['device_accuracy'])} | {v['device_mismatches']} | "
                     f"{v['peak_heap_bytes']:,} | {_romfs(v)} |")
    if s.get("variants_note"):
        lines += ["", s["variants_note"]]
    lines += ["", f"Accuracies over the {r['test_rows']} test rows of `test.npz`. *float*: microdx's float reference "
              "of the source model; *int8 host*: the blob on the host's integer reference; *device*: the blob on the "
              "MicroPython unix port with the board's heap (the same device code as the board), *mismatches*: rows "
              "whose device output differs from the host's at all. *peak heap*: bytes above the interpreter's own, "
              "udx's code included (64-bit unix port). *from ROMFS*: the peak heap when the blob is read from a "
              "memory-mapped ROMFS image (`microdx deploy --romfs`), its weights used in place (vfs.VfsRom on the "
              "unix port; the layers in place in brackets)."]
    for k, v in r["variants"].items():
        h = v.get("small_heap")
        if h and "skipped" not in h:
            rom = (", udx and the blob in its memory-mapped ROMFS, where .mpy code executes and weights are read in "
                   "place"
                   if h.get("rom") else "")
            lines += ["", f"**`{k}.dxb` in a {h['heap'] // 1024} KB heap**, on a 32-bit MCU ({h['target']}: the rest "
                      f"of its heap held by a ballast{rom}; "
                      f"budget {h['budget_bytes']:,} bytes): all {h['rows']} test rows, {h['mismatches']} outputs "
                      f"differing from the host's; {h['heap_used_bytes']:,} bytes of the heap in use at the end, "
                      f"interpreter and udx included. The 64-bit unix port doubles every object, so it cannot host "
                      f"udx in 32 KB: the table's device column runs this blob with the {v['board']} heap."]
            f = h.get("with_frontend")
            if f:
                lines += ["", f"With its front-end streaming the audio as well (the first {f['clips']} test "
                          f"recordings, 256 samples per push, same target and budget, no ballast) it needs "
                          f"{f['heap_used_bytes']:,} bytes of heap, {f['mismatches']} outputs differing from the "
                          f"host's: {'within' if f['heap_used_bytes'] < h['heap'] else 'more than'} "
                          f"{h['heap'] // 1024} KB. The front-end's tables and ring of frames take about 8 KB and "
                          f"its native code about 6 KB."]
    if r.get("audio"):
        a = r["audio"]
        lines += ["", "### From the recordings", "",
                  f"The device's front-end on the {a['clips']} test recordings themselves (int16 PCM pushed 256 "
                  f"samples at a time through `udx.frontend`), against the host's integer reference of the same "
                  f"audio. Features equal to `test.npz`'s: {'yes' if a['features_equal_test_npz'] else 'NO'}.", "",
                  "| variant | host | device | mismatches | peak heap |", "|---|---|---|---|---|"]
        for k in r["variants"]:
            if k in a:
                lines.append(f"| `{k}.dxb` | {_pct(a[k]['host_accuracy'])} | {_pct(a[k]['device_accuracy'])} | "
                             f"{a[k]['device_mismatches']} | {a[k]['peak_heap_bytes']:,} |")
    if r["qemu_targets"]:
        ts = r["qemu_targets"]
        lines += ["", "## Speed", "", "Instructions per inference (model only, exact: QEMU `-icount`), asm and viper "
                  "backends, udx's default budget:", "",
                  "| variant | " + " | ".join(f"{t} {b}" for t in ts for b in ("asm", "viper")) + " |",
                  "|" + "---|" * (1 + 2 * len(ts))]
        for k, v in r["variants"].items():
            lines.append(f"| `{k}` | " + " | ".join(
                f"{v[t][b]['instructions_per_inference']:,} ({v[t][b]['instructions_per_mac']}/MAC)"
                + ("" if v[t][b]["matches_host"] else " DIFFERS") for t in ts for b in ("asm", "viper")) + " |")
        lat = r["latency_estimate"]
        if lat:
            lines += ["", "Estimated latency per inference (asm backend): instructions × the board profile's "
                      "*assumed* cycles per instruction / clock — an estimate, not a measurement on hardware:", "",
                      "| variant | " + " | ".join(lat) + " |", "|" + "---|" * (1 + len(lat))]
            for k in r["variants"]:
                lines.append(f"| `{k}` | " + " | ".join(
                    f"{lat[b]['estimated_us_per_inference'][k] / 1000:.1f} ms" for b in lat) + " |")
    if s.get("frontend_note"):
        lines += ["", s["frontend_note"]]
    lines += ["", "## How the numbers were produced", "", s["commands"], "",
              "`python tools/bundle_models.py --only " + name + "` converts every variant from the committed source "
              "and calibration rows, measures them as above and writes `results.json` and this card; "
              "`tests/test_bundled_models.py` checks the committed blobs against it.", "",
              "## Limitations", "", s["limitations"], "", "## Licence and attribution", "", s["licence"], ""]
    return "\n".join(lines)


def write_card(name: str, r: dict) -> None:
    (folder(name) / "MODEL.md").write_text(card(name, r))


def _ms(us) -> str:
    return "n/a" if us is None else f"{us / 1000:.0f} ms"


def index() -> str:
    """models/README.md: every bundled model's variants in one table, from their committed results."""
    lines = ["# Bundled models", "",
             "Pre-trained, pre-compressed models, each converted per board and measured on the emulated boards by "
             "`tools/bundle_models.py` (numbers below are copied from each folder's `results.json`; its "
             "`MODEL.md` card says how each was obtained, the data, the split and the licence). "
             "`tests/test_bundled_models.py` runs every blob again on the MicroPython unix port and checks them.", "",
             "| model | variant | blob bytes | accuracy (test, on the device) | peak heap (unix port) | qemu-m3 "
             "instructions per inference (asm) | estimated RP2040 latency |", "|---|---|---|---|---|---|---|"]
    for name in names():
        r = results(name)
        lat = r["latency_estimate"].get("rp2040", {}).get("estimated_us_per_inference", {})
        for v in spec(name)["variants"]:
            row = r["variants"][v["name"]]
            m3 = row.get("qemu-m3", {}).get("asm", {}).get("instructions_per_inference")
            lines.append(f"| [{name}]({name}/MODEL.md) | `{v['name']}.dxb` | {row['blob_bytes']:,} | "
                         f"{_pct(row['device_accuracy'])} ({r['test_rows']} rows) | {row['peak_heap_bytes']:,} | "
                         f"{'n/a' if m3 is None else f'{m3:,}'} | "
                         f"{_ms(lat.get(v['name']))} |")
    lines += ["", "Audio models (kws-digits, speaker-fsdd) carry the integer MFCC front-end in the blob: on the board, "
              "`udx.frontend.stream(model)` takes the microphone's PCM (see docs/runtime.md); the front-end's own "
              "cost, 0.43 M instructions per 10 ms frame on qemu-m3, is not in the instruction counts above. "
              "Latencies are estimates (instructions x the board profile's assumed cycles per instruction / "
              "clock), not measurements on hardware.", "",
              "Licences: kws-digits and speaker-fsdd are derived from the Free Spoken Digit Dataset and are CC BY-SA "
              "4.0; see each card.", ""]
    return "\n".join(lines)
