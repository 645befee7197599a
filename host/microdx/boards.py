"""Board profiles (boards/<name>/profile.json): RAM, flash, FPU, emitters of the supported microcontroller boards.
Each board's folder also holds its example main.py and a README."""
from __future__ import annotations

import json
import re

from microdx.errors import MicrodxError
from microdx.paths import repo_dir

UNITS = {"": 1, "k": 1024, "m": 1024 * 1024}


def names() -> list[str]:
    """Names of all board profiles."""
    return sorted(p.parent.name for p in repo_dir("boards").glob("*/profile.json"))


def load(name: str) -> dict:
    """The profile of board `name`; MicrodxError listing the known boards if there is none."""
    path = repo_dir("boards") / name / "profile.json"
    if not name or "/" in name or not path.is_file():
        raise MicrodxError(f"unknown board '{name}'; known boards: {', '.join(names())}")
    return json.loads(path.read_text())


def parse_bytes(text: str | int) -> int:
    """A positive size in bytes: '1500' -> 1500, '64K' -> 65536, '1M' -> 1048576 (K and M are 1024-based;
    'KB', 'k' and 'kb' read the same). Zero, negative and unreadable sizes raise MicrodxError."""
    m = re.fullmatch(r"\s*([+-]?\d+)\s*([kKmM]?)[bB]?\s*", str(text))
    if not m:
        raise MicrodxError(f"cannot read '{text}' as a size: use bytes, or a whole number with K or M (e.g. 64K)")
    size = int(m.group(1)) * UNITS[m.group(2).lower()]
    if size <= 0:
        raise MicrodxError(f"size '{text}' must be more than 0 bytes")
    return size
