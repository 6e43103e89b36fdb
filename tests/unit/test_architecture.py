"""ARCHITECTURE.md is the map of the code: every module under app/, routers/ and schemas/
has its line in the code map, and the map names no module that is gone. And bench/ stands
on its own: none of its modules imports the tests."""

from __future__ import annotations

import ast
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


def _imported_modules(path: Path, *, at_run_time: bool = False) -> set[str]:
    """The modules `path` imports, wherever in it (`import a.b`, `from a.b import c`);
    with `at_run_time`, not those imported only under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if at_run_time:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                node.body = []
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
    return imported


def test_bench_does_not_import_the_tests() -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT).as_posix()}: {module}"
        for path in (ROOT / "bench").rglob("*.py")
        if "node_modules" not in path.parts
        for module in _imported_modules(path)
        if module == "tests" or module.startswith("tests.")
    )
    assert not offenders, (
        f"bench/ imports the tests (move what it needs to app/ or bench/): {offenders}"
    )


#: What the foundation packages may import of app/ at run time (ARCHITECTURE.md, Invariants).
FOUNDATIONS = {"app/core": {"app.core"}, "app/store": {"app.core", "app.store"}}


def test_the_foundations_import_nothing_above_them() -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT).as_posix()}: {module}"
        for package, allowed in FOUNDATIONS.items()
        for path in (ROOT / package).rglob("*.py")
        for module in _imported_modules(path, at_run_time=True)
        if module.startswith("app.") and not module.startswith(tuple(f"{a}." for a in allowed))
    )
    assert not offenders, f"app/core and app/store stand below the rest: {offenders}"
