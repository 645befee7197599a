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
}


def get(name: str, **params) -> Optimizer:
    """The optimizer registered as `name`, constructed with `params` (its knobs)."""
    if name not in REGISTRY:
        raise MicrodxError(f"unknown optimizer '{name}'; known: {', '.join(sorted(REGISTRY))}")
    module, cls = REGISTRY[name].split(":")
    return getattr(import_module(module), cls)(**params)


__all__ = ["REGISTRY", "Optimizer", "OptimizerResult", "get"]
