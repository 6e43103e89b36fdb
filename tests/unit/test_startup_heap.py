"""The heap alive after start-up is frozen for the garbage collector, once per process."""

from __future__ import annotations

import gc
from pathlib import Path

from asgi_lifespan import LifespanManager

from app.main import create_app
from tests.conftest import make_settings


async def test_the_start_up_heap_is_frozen_once_per_process(tmp_path: Path) -> None:
    gc.unfreeze()  # as in a process that has started nothing yet
    assert gc.get_freeze_count() == 0

    first = create_app(make_settings("http://127.0.0.1:9", tmp_path / "a"))
    async with LifespanManager(first):
        frozen = gc.get_freeze_count()
        assert frozen > 50_000  # the modules, the app, its routes and models

    second = create_app(make_settings("http://127.0.0.1:9", tmp_path / "b"))
    async with LifespanManager(second):
        assert gc.get_freeze_count() <= frozen  # a second start-up freezes nothing more
