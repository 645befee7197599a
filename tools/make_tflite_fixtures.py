"""Build the int8 .tflite fixtures of the TFLite importer tests (issue 8) the way users make them, and record what
TFLite's reference kernels compute for them.

Each model is a small Keras model with fixed random weights, converted by TensorFlow's TFLite converter to full-integer
int8 (int8 input and output, a representative dataset of 200 random inputs). Its outputs come from ai-edge-litert's
interpreter with the reference op resolver (BUILTIN_REF: TFLite's reference kernels, not XNNPACK, which rounds
differently), on random int8 inputs and edge cases (all -128, all 127, all the input zero point, alternating extremes);
for models that end in a softmax the logits before it are recorded too (experimental_preserve_all_tensors).

Writes tests/fixtures/tflite/NAME.tflite and NAME.npz (x: int8 inputs (N, *shape); y: int8 outputs; logits: int8
pre-softmax outputs where there is a softmax), and the float model NAME_f32.tflite with NAME_f32.npz (x: 16 normal
float inputs, y: TFLite's float outputs). Needs tensorflow-cpu 2.21 and ai-edge-litert (not project dependencies:
the fixtures are committed, the tests only read them). Usage: python tools/make_tflite_fixtures.py [--out DIR]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tflite"


def _models():
    """name -> (keras model, input shape): an MLP, a CNN with SAME and VALID padding and strides, a depthwise-
    separable keyword-spotting network over 49x10, a residual block, a global average pool (MEAN), and a SOFTMAX and a MEAN alone."""
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers

    tf.keras.utils.set_random_seed(7)
    models = {}

    inp = keras.Input((20,), batch_size=1)   # a fixed batch: static reshapes, no SHAPE/PACK ops
    h = layers.Dense(32, activation="relu")(inp)
    h = layers.Dense(16, activation="relu6")(h)
    models["mlp"] = (keras.Model(inp, layers.Dense(10)(h)), (20,))

    inp = keras.Input((12, 10, 1), batch_size=1)
    h = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    h = layers.Conv2D(12, (3, 2), strides=(1, 2), padding="valid", activation="relu6")(h)
    h = layers.MaxPooling2D(2, padding="same")(h)
    h = layers.Flatten()(h)
    models["cnn"] = (keras.Model(inp, layers.Dense(6)(h)), (12, 10, 1))

    inp = keras.Input((49, 10, 1), batch_size=1)
    h = layers.Conv2D(24, (10, 4), strides=(2, 2), padding="same", activation="relu")(inp)
    for _ in range(2):
        h = layers.DepthwiseConv2D(3, padding="same", activation="relu")(h)
        h = layers.Conv2D(24, 1, activation="relu")(h)
    h = layers.AveragePooling2D((25, 5))(h)
    h = layers.Flatten()(h)
    out = layers.Softmax()(layers.Dense(12, name="logits")(h))
    models["kws_dscnn"] = (keras.Model(inp, out), (49, 10, 1))

    inp = keras.Input((8, 8, 4), batch_size=1)
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    b = layers.Conv2D(8, 3, padding="same")(a)
    h = layers.ReLU()(layers.Add()([a, b]))
    h = layers.Flatten()(layers.AveragePooling2D(8)(h))   # AVERAGE_POOL_2D over the map (GAP would be MEAN)
    models["residual"] = (keras.Model(inp, layers.Dense(5, kernel_initializer="glorot_normal")(h)), (8, 8, 4))

    inp = keras.Input((10, 8, 2), batch_size=1)   # Keras' GlobalAveragePooling2D: TFLite's MEAN over H and W
    h = layers.Conv2D(6, 3, padding="same", activation="relu")(inp)
    models["gap_mean"] = (keras.Model(inp, layers.Dense(4)(layers.GlobalAveragePooling2D()(h))), (10, 8, 2))

    inp = keras.Input((10,), batch_size=1)   # SOFTMAX alone, its input the logits: many rows test its arithmetic
    models["softmax"] = (keras.Model(inp, layers.Softmax()(inp)), (10,))

    inp = keras.Input((6, 5, 4), batch_size=1)   # MEAN alone (GlobalAveragePooling2D), its own output scale
    models["mean"] = (keras.Model(inp, layers.GlobalAveragePooling2D()(inp)), (6, 5, 4))
    return models


ROWS = {"softmax": 300, "mean": 300}   # random input rows per model (default 12), before the 4 edge cases


def _convert(model, shape, rng):
    import tensorflow as tf

    calib = rng.normal(size=(200, *shape)).astype(np.float32)

    def representative():
        for row in calib:
            yield [row[None]]

    names = [layer.name for layer in model.layers]
    if "logits" in names:   # random weights average out to near-equal logits: scale them to a spread of about 2
        dense = model.get_layer("logits")
        pre = tf.keras.Model(model.input, dense.output)(calib).numpy()
        w, b = dense.get_weights()
        dense.set_weights([w * 2 / pre.std(), b])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def _convert_float(model):
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _float_outputs(flat: bytes, shape, rng):
    """(x, y) of the float model from TFLite's reference kernels, on 16 normal random inputs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=flat, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = rng.normal(size=(16, *shape)).astype(np.float32)
    ys = []
    for row in x:
        it.set_tensor(inp["index"], row[None])
        it.invoke()
        ys.append(it.get_tensor(out["index"])[0].copy())
    return x, np.stack(ys)


def _reference_outputs(flat: bytes, shape, rng, softmax: bool, rows: int = 12):
    """(x, y, logits or None) from TFLite's reference kernels."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=flat, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    zero = int(inp["quantization"][1])
    n = int(np.prod(shape))
    xs = [rng.integers(-128, 128, size=shape) for _ in range(rows)]
    xs += [np.full(shape, -128), np.full(shape, 127), np.full(shape, zero),
           np.tile([-128, 127], n)[:n].reshape(shape)]
    x = np.stack(xs).astype(np.int8)
    logits_index = None
    if softmax:   # the softmax's input tensor: the logits
        ops = it._get_ops_details()
        sm = next(op for op in ops if op["op_name"] == "SOFTMAX")
        logits_index = sm["inputs"][0]
    ys, logits = [], []
    for row in x:
        it.set_tensor(inp["index"], row[None])
        it.invoke()
        ys.append(it.get_tensor(out["index"])[0].copy())
        if logits_index is not None:
            logits.append(it.get_tensor(logits_index)[0].copy())
    return x, np.stack(ys), (np.stack(logits) if logits else None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(8)
    for name, (model, shape) in _models().items():
        flat = _convert(model, shape, rng)
        x, y, logits = _reference_outputs(flat, shape, rng, softmax=name == "kws_dscnn", rows=ROWS.get(name, 12))
        (args.out / f"{name}.tflite").write_bytes(flat)
        arrays = {"x": x, "y": y}
        if logits is not None:
            arrays["logits"] = logits
        np.savez_compressed(args.out / f"{name}.npz", **arrays)
        print(f"{name}: {len(flat):,} bytes, {len(x)} inputs, outputs {y.shape[1:]}")
        flat = _convert_float(model)   # the float model, for microdx to quantize itself
        x, y = _float_outputs(flat, shape, rng)
        (args.out / f"{name}_f32.tflite").write_bytes(flat)
        np.savez_compressed(args.out / f"{name}_f32.npz", x=x, y=y)
        print(f"{name}_f32: {len(flat):,} bytes")


if __name__ == "__main__":
    main()
