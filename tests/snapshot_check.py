"""Text snapshots: reviewed expectations committed under tests/snapshots/.

A missing or different snapshot fails the test. After an intended change of a layout, write them
with ``NORMX_UPDATE_SNAPSHOTS=1 python -m pytest TEST_FILE``, review the diff (``git diff
tests/snapshots``) and commit it; the code under test never writes them otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

SNAPSHOTS = Path(__file__).parent / "snapshots"


def check_snapshot(name: str, text: str) -> None:
    """``text`` (compared exactly, trailing newlines included) against ``tests/snapshots/NAME.txt``."""
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("NORMX_UPDATE_SNAPSHOTS"):
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), (f"snapshot {path.name} is missing: write it with NORMX_UPDATE_SNAPSHOTS=1, "
                           "review it and commit it")
    assert text == path.read_text(encoding="utf-8"), f"snapshot {path.name} differs; see tests/snapshot_check.py"
