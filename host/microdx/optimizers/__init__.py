"""Model optimizers: pure functions Graph -> Graph, each with its own knobs and a report (DESIGN §1).

Every optimizer has the same shape (scikit-learn style): construct it with its knobs, `apply(graph)` returns
an OptimizerResult (the new graph and a report of bytes and MACs before/after). A new optimizer is one module
plus one line in REGISTRY.
"""
from __future__ import annotations

from importlib import import_module

from microdx.errors import MicrodxError
from microdx.optimizers.base import Optimizer, OptimizerResult

# name -> "module:class", imported only when used
REGISTRY = {
    "clean": "microdx.optimizers.clean:Clean",
    "svd": "microdx.optimizers.svd:SVD",
    "prune_units": "microdx.optimizers.prune_units:PruneUnits",
    "prune": "microdx.optimizers.prune:Prune",
    "kmeans": "microdx.optimizers.kmeans:KMeansShare",
    "dict": "microdx.optimizers.sparse_dict:SparseDict",
    "finetune": "microdx.optimizers.finetune:Finetune",
    "int16": "microdx.optimizers.int16:Int16Weights",
    "f16": "microdx.optimizers.f16:Float16Storage",
    "separate": "microdx.optimizers.separate:Separate",
}


def _value(text: str):
    """'16' -> 16, '0.95' -> 0.95, anything else stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_recipe(recipe: str) -> list[Optimizer]:
    """Optimizers of a recipe: steps separated by commas, each `name` or `name:knob=value[:knob=value...]`,
    applied in order, e.g. "svd:energy=0.95" or "clean,svd:rank=32:min_inputs=64". Quantization (int8, or
    --float) comes after the recipe."""
    steps = []
    for step in (s.strip() for s in recipe.split(",")):
        if not step:
            raise MicrodxError(f"recipe '{recipe}': empty step; steps are separated by single commas")
        name, *knobs = step.split(":")
        params = {}
        for knob in knobs:
            key, eq, value = knob.partition("=")
            if not eq or not key or not value:
                raise MicrodxError(f"recipe step '{step}': '{knob}' is not knob=value")
            params[key] = _value(value)
        steps.append(get(name, **params))
    return steps


def get(name: str, **params) -> Optimizer:
    """The optimizer registered as `name`, constructed with `params` (its knobs)."""
    if name not in REGISTRY:
        raise MicrodxError(f"unknown optimizer '{name}'; known: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    cls = getattr(import_module(module), cls)
    unknown = sorted(set(params) - set(getattr(cls, "KNOBS", ())))
    if unknown:
        raise MicrodxError(f"optimizer '{name}' has no knob {', '.join(unknown)}; its knobs: "
                           f"{', '.join(getattr(cls, 'KNOBS', ())) or 'none'}")
    return cls(**params)


__all__ = ["REGISTRY", "Optimizer", "OptimizerResult", "get", "parse_recipe"]
