"""The bundled models (models/<name>/): every committed blob is measured again here, on the host reference and on the
MicroPython unix port with its board's heap, against what its card (results.json -> MODEL.md) states.

- device outputs equal the host's for every test row (0 mismatches), so device accuracy = compressed host accuracy;
- the accuracy floors of the issue: kws-digits >= 98% on the conventional split (rp2040 blob, rp2040 heap),
  speaker-fsdd >= 99% for every compressed variant, speaker-jvowels >= 97%; har-watch is reported, not floored;
- fits: stm32f411 blobs <= 32 KB, rp2040 blobs in the rp2040 heap; tiny blobs in a 32 KB heap on qemu-m3 (a 32-bit
  MCU: the 64-bit unix port needs about twice the heap for the same objects, udx alone 28 KB of it);
- the committed card is what microdx.bundled renders from the committed results;
- with ../shared/data/fsdd: the device front-end on the FSDD test recordings gives the committed test features.
"""
import numpy as np
import pytest

from microdx import blob_reader, bundled, data, pipeline, qemu, reference
from microdx.datasets import fsdd

FLOORS = {"kws-digits": 0.98, "speaker-fsdd": 0.99, "speaker-jvowels": 0.97}
VARIANTS = [(m, v["name"]) for m in bundled.names() for v in bundled.spec(m)["variants"]]


def _variant(model, name):
    return next(v for v in bundled.spec(model)["variants"] if v["name"] == name)


def test_the_bundled_models_are_there():
    assert {"kws-digits", "speaker-fsdd", "speaker-jvowels", "har-watch"} <= set(bundled.names())
    for m in bundled.names():
        names = {v["name"].split("-")[-1] for v in bundled.spec(m)["variants"]}
        assert {"rp2040", "stm32f411", "tiny"} <= names, (m, names)


@pytest.mark.parametrize("model, variant", VARIANTS)
def test_a_bundled_blob_runs_on_its_board_as_its_card_says(model, variant):
    v = _variant(model, variant)
    path = bundled.blob(model, variant)
    stated = bundled.results(model)["variants"][variant]
    test = data.load(bundled.folder(model) / "test.npz")
    r = pipeline.evaluate(path, test, device=True, board=v["board"], budget=v.get("budget"))
    assert r["mismatches"] == 0
    assert r["device_accuracy"] == r["accuracy"] == stated["host_accuracy"] == stated["device_accuracy"]
    assert path.stat().st_size == stated["blob_bytes"]
    assert r["labels_as"] and blob_reader.read(path).graph.labels == bundled.labels(model)
    if model in FLOORS and (model != "kws-digits" or v["board"] == "rp2040"):
        assert r["accuracy"] >= FLOORS[model], (model, variant, r["accuracy"])
    if variant.endswith("stm32f411"):
        assert stated["blob_bytes"] <= 32 * 1024
    if variant.endswith("tiny"):
        assert v["small_heap"]["heap"] <= 32 * 1024 and stated["small_heap"]["mismatches"] == 0
        assert stated["small_heap"]["rows"] == len(test.rows)
    assert stated["flash"]["fits"], stated["flash"]


@pytest.mark.skipif(not qemu.available("qemu-m3"), reason="needs ../shared/targets/qemu-m3 and qemu-system-arm")
@pytest.mark.parametrize("model, variant", [mv for mv in VARIANTS if mv[1].endswith("tiny")])
def test_a_tiny_blob_runs_in_a_32k_heap_on_a_32_bit_mcu(model, variant):
    """The first 40 test rows on qemu-m3 with 32 KB of heap in all (results.json has every row): host outputs."""
    v = _variant(model, variant)
    path = bundled.blob(model, variant)
    g = blob_reader.read(path).graph
    x = pipeline.model_input(g, data.load(bundled.folder(model) / "test.npz", limit=40))
    r = bundled.small_heap(path, x, v)
    assert r["heap"] == 32 * 1024 and r["mismatches"] == 0 and r["heap_used_bytes"] < r["heap"], r


@pytest.mark.parametrize("model", bundled.names())
def test_the_card_is_rendered_from_the_committed_results(model):
    assert (bundled.folder(model) / "MODEL.md").read_text() == bundled.card(model, bundled.results(model))


def test_the_models_index_is_rendered_from_the_committed_results():
    assert (bundled.folder("x").parent / "README.md").read_text() == bundled.index()


@pytest.mark.skipif(not (fsdd.DEFAULT / "recordings").is_dir(), reason="needs ../shared/data/fsdd")
@pytest.mark.parametrize("model", [m for m in bundled.names() if bundled.spec(m).get("frontend")])
def test_the_test_features_are_the_device_front_end_of_the_recordings(model):
    """test.npz's features are the integer front-end of the named test recordings, and the rp2040 blob classifies
    those recordings on the emulated Pico, its own front-end running on the PCM, exactly as the host."""
    from microdx import audio

    s = bundled.spec(model)
    z = np.load(bundled.folder(model) / "test.npz")
    v = next(v for v in s["variants"] if v["board"] == "rp2040" and not v["name"].endswith("tiny"))
    g = blob_reader.read(bundled.blob(model, v["name"])).graph
    pcm = bundled.test_recordings(model, fsdd.DEFAULT)
    assert len(pcm) == len(z["name"]) and pcm.shape[1] == audio.clip_samples(g.frontend)
    assert np.array_equal(audio.features(pcm, g.frontend), np.round(z["x"] * 256).astype(np.int64))
    clips = data.Data("recordings", None, None, z["y"], pcm, 8000)
    r = pipeline.evaluate(bundled.blob(model, v["name"]), clips, device=True, board="rp2040")
    assert r["mismatches"] == 0 and r["device_accuracy"] == r["accuracy"]
    want = reference.run(g, pipeline.model_input(g, data.load(bundled.folder(model) / "test.npz")))
    assert r["accuracy"] == reference.accuracy(want, z["y"])
