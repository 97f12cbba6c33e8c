"""What `pip install -e .` (make venv) puts on the import path: the page scripts' shared modules
(``pages.labeling_widgets``) must import under `streamlit run` from any folder, with no sys.path edit."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_installed_packages_include_pages_and_leave_out_tests():
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    installed = {d.name for d in ROOT.iterdir() if d.is_dir() and any(fnmatch(d.name, p) for p in include)}
    assert {"app", "models", "labeling", "pages"} <= installed
    assert not installed & {"tests", "bench", "data"}
