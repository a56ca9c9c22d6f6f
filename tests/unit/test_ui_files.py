"""The dashboard's files: every one is shipped in the package and servable, and nothing
outside api/ui can be asked for."""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

from api.routes.ui import _TYPES, UI_DIR, _resolve

ROOT = Path(__file__).resolve().parents[2]


def test_every_dashboard_file_is_shipped_and_servable() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["api"]
    shipped = {
        Path(found)
        for pattern in globs
        for found in glob.glob(str(UI_DIR.parent / pattern), recursive=True)
    }
    files = [p for p in UI_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files
    for path in files:
        assert path in shipped, f"{path} is not in the package data"
        assert path.suffix in _TYPES, f"{path} would not be served"
        assert _resolve(str(path.relative_to(UI_DIR))) == path


def test_paths_outside_the_dashboard_are_refused() -> None:
    for bad in ("../routes/ui.py", "../../pyproject.toml", "/etc/passwd", "lib", "", "x\0.js"):
        assert _resolve(bad) is None, bad
