"""pyproject.toml lists packages by hand (``plugins/`` ships as ``normx_plugins``): every package
directory must be listed, or a non-editable install silently leaves it out."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    dirs = {name: ROOT / path for name, path in config.get("package-dir", {}).items()}
    found = set()
    for top in ("explorer", "normx_plugins"):
        base = dirs.get(top, ROOT / top)
        for init in base.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            found.add(".".join([top, *init.parent.relative_to(base).parts]))
    assert found - listed == set(), f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert listed - found == set(), f"pyproject.toml lists packages that do not exist: {sorted(listed - found)}"
