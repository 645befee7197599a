import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def _micropython_present():
    """Device tests are the point of this suite: fail loudly, never skip, if the unix port is missing."""
    from microdx import emulator

    emulator.micropython()
