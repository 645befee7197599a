"""Board profiles (boards/*.json): RAM, flash, FPU, emitters of the supported microcontroller boards."""
from __future__ import annotations

import json
import re

from microdx.errors import MicrodxError
from microdx.paths import repo_dir


def names() -> list[str]:
    """Names of all board profiles."""
    return sorted(p.stem for p in repo_dir("boards").glob("*.json"))


def load(name: str) -> dict:
    """The profile of board `name`; MicrodxError listing the known boards if there is none."""
    path = repo_dir("boards") / f"{name}.json"
    if not path.is_file():
        raise MicrodxError(f"unknown board '{name}'; known boards: {', '.join(names())}")
    return json.loads(path.read_text())


def parse_bytes(text: str | int) -> int:
    """'64K' -> 65536, '1M' -> 1048576, '1500' -> 1500 (bytes)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)[bB]?\s*", str(text))
    if not m:
        raise MicrodxError(f"cannot read '{text}' as a size: use bytes, or a number with K or M (e.g. 64K)")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
