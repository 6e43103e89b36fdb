"""ARCHITECTURE.md is the map of the code: every module under app/, routers/ and schemas/
has its line in the code map, and the map names no module that is gone."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAPPED_PACKAGES = ("app", "routers", "schemas")
#: A code-map row: "| `package/module.py` | what it holds |".
ROW = re.compile(r"^\| `((?:app|routers|schemas)/[\w/]+\.py)` \|", re.MULTILINE)


def _modules() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for package in MAPPED_PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }


def _mapped() -> set[str]:
    return set(ROW.findall((ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")))


def test_every_module_is_in_the_code_map() -> None:
    missing = sorted(_modules() - _mapped())
    assert not missing, f"add these modules to ARCHITECTURE.md's code map: {missing}"


def test_the_code_map_names_only_modules_that_exist() -> None:
    gone = sorted(_mapped() - _modules())
    assert not gone, f"ARCHITECTURE.md's code map names modules that do not exist: {gone}"
