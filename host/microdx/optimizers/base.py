"""The one interface every optimizer follows."""
from __future__ import annotations

from dataclasses import dataclass, field

from microdx.ir import Graph
from microdx.ops import op


@dataclass
class OptimizerResult:
    graph: Graph
    report: dict = field(default_factory=dict)   # see Optimizer.report()


def weight_bytes(graph: Graph) -> int:
    """Bytes of the graph's tensors as they are stored now (float32 for float layers)."""
    return sum(int(t.nbytes) for layer in graph.layers for t in layer.tensors.values())


def graph_macs(graph: Graph) -> int:
    """Multiply-accumulates per inference."""
    return sum(op(layer.kind).macs(layer) for layer in graph.layers)


class Optimizer:
    """Base class: `__init__` stores the knobs (keyword arguments), `apply(graph)` returns an OptimizerResult
    and never changes its input."""

    name = ""
    KNOBS: tuple = ()        # keyword arguments the recipe may set

    def __init__(self, **params):
        self.params = params

    def get_params(self) -> dict:
        """The knobs, as given (recorded in reports, and later in blob headers)."""
        return dict(self.params)

    def apply(self, graph: Graph) -> OptimizerResult:
        """The default: every layer `selects` accepts goes through `per_layer` on its own; the others stay."""
        layers, rows = [], []
        for layer in graph.layers:
            if not self.selects(layer):
                layers.append(layer)
                continue
            new, row = self.per_layer(layer)
            layers += new
            rows.append(row)
        out = graph.copy(layers=layers)
        return OptimizerResult(out, self.report(graph, out, rows, [self.note(r) for r in rows]))

    def per_layer(self, layer) -> tuple[list, dict]:
        """(the layers that replace `layer`, its report row with at least "layer")."""
        raise NotImplementedError

    def note(self, row: dict) -> str:
        """One human-readable line for a report row."""
        return f"{self.name} {row['layer']}"

    def selects(self, layer) -> bool:
        """Whether this optimizer works on `layer`: a float dense layer with at least `min_inputs` inputs (if the
        optimizer has that knob), named by the `layers` knob when one is given."""
        return (layer.kind == "dense" and layer.dtype == "f32"
                and layer.tensors["w"].shape[1] >= getattr(self, "min_inputs", 0)
                and not (getattr(self, "layers", None) and layer.name not in self.layers))

    def report(self, before: Graph, after: Graph, layers: list, notes: list) -> dict:
        """Report: optimizer name, params, bytes and MACs before/after, per-layer entries and notes."""
        return {"optimizer": self.name, "params": self.get_params(),
                "bytes_before": weight_bytes(before), "bytes_after": weight_bytes(after),
                "macs_before": graph_macs(before), "macs_after": graph_macs(after),
                "layers": layers, "notes": notes}


def layer_names(value) -> set | None:
    """The `layers` knob: None (every layer), or names joined by '+' in a recipe ("fc1+fc2"), or a list."""
    if value is None:
        return None
    return set(value.split("+")) if isinstance(value, str) else set(value)
