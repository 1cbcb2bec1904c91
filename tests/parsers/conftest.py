from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real" / "command-output"


def read_real(name: str) -> str:
    """A real capture, exactly as stored (see tests/fixtures/real/command-output/SOURCES.md)."""
    return (REAL / name).read_text(encoding="utf-8")


@pytest.fixture
def real() -> Callable[[str], str]:
    return read_real
