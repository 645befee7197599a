"""Where the repository's non-Python-package parts live (device code, board profiles, bundled models)."""
from pathlib import Path

from microdx.errors import MicrodxError

ROOT = Path(__file__).resolve().parents[2]


def repo_dir(name: str) -> Path:
    """`ROOT/name`, which exists when microdx is installed from its source tree (pip install -e)."""
    path = ROOT / name
    if not path.is_dir():
        raise MicrodxError(f"{path} not found: microdx needs its source tree (git clone, then pip install -e '.[dev]')")
    return path
