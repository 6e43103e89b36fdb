"""One way to the database: SQL is written in `app/store/` (and `migrations/`) only. A
module of the service (app/, routers/, schemas/) outside `app/store/` that imports
SQLAlchemy's statement builders, sessions, tables or dialects fails here; it may name
SQLAlchemy's exceptions (`sqlalchemy.exc`) and parse a database URL (`make_url`, `URL`),
as the settings do."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("app", "routers", "schemas")
STORE = ROOT / "app" / "store"
#: What a module outside the store may import from SQLAlchemy: module -> names (None: any).
ALLOWED: dict[str, frozenset[str] | None] = {
    "sqlalchemy.exc": None,
    "sqlalchemy.engine": frozenset({"make_url", "URL"}),
    "sqlalchemy.engine.url": frozenset({"make_url", "URL"}),
}


def _is_sqlalchemy(module: str) -> bool:
    return module.split(".")[0] == "sqlalchemy"


def _sqlalchemy_imports(path: Path) -> list[str]:
    """`line: import` for each import of SQLAlchemy in `path` that `ALLOWED` does not allow."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:  # a whole module: allowed only when all of it is
                if _is_sqlalchemy(alias.name) and ALLOWED.get(alias.name, frozenset()) is not None:
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not _is_sqlalchemy(node.module):
                continue
            allowed = ALLOWED.get(node.module, frozenset())
            names = [a.name for a in node.names if allowed is not None and a.name not in allowed]
            if names:
                found.append(f"{node.lineno}: from {node.module} import {', '.join(names)}")
    return found


def test_no_module_outside_the_store_imports_sqlalchemys_statement_builders() -> None:
    offenders = {
        path.relative_to(ROOT).as_posix(): imports
        for package in SERVICE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.is_relative_to(STORE)
        if (imports := _sqlalchemy_imports(path))
    }
    assert not offenders, f"SQL belongs in app/store/ (a repository module): {offenders}"


def test_the_check_sees_a_statement_builder(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "import sqlalchemy as sa\n"
        "from sqlalchemy import select\n"
        "from sqlalchemy.ext.asyncio import AsyncSession\n"
        "from sqlalchemy.engine import make_url, Connection\n"
        "from sqlalchemy.exc import SQLAlchemyError\n"
    )
    assert _sqlalchemy_imports(module) == [
        "1: import sqlalchemy",
        "2: from sqlalchemy import select",
        "3: from sqlalchemy.ext.asyncio import AsyncSession",
        "4: from sqlalchemy.engine import Connection",
    ]
