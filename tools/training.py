"""What the training tools (train_fsdd.py, train_jvowels.py, train_har.py) share: one epoch of mini-batch training,
the ONNX export microdx's importers read, and onnxruntime's logits of an exported file (the float accuracy every
train.json states is measured on the exported file, not on the PyTorch model)."""
from __future__ import annotations

import warnings

import numpy as np


def epoch(torch, model, opt, xt, yt, generator, batch: int, label_smoothing: float = 0.0) -> None:
    """One pass over (xt, yt) in a random order drawn from `generator`, cross-entropy, one step per batch."""
    model.train()
    perm = torch.randperm(len(xt), generator=generator)
    for i in range(0, len(xt), batch):
        idx = perm[i:i + batch]
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx], label_smoothing=label_smoothing).backward()
        opt.step()


def export_onnx(torch, model, example, path, name: str, labels=None) -> list[str]:
    """Export with the classic exporter (opset 17, dynamic batch; the graph's name becomes the blob's model name,
    `labels` go into the model's metadata); returns the ONNX op types used."""
    import onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # the classic exporter, on purpose
        torch.onnx.export(model, example, str(path), input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    m = onnx.load(str(path))
    m.graph.name = name
    if labels is not None:
        onnx.helper.set_model_props(m, {"labels": ",".join(labels)})
    onnx.save(m, str(path))
    return sorted({n.op_type for n in m.graph.node})


def ort_logits(path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's outputs of the exported model for float32 inputs `x` (one thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
