"""`app.livekit.services.LIVEKIT_SERVICES` is the one table of the LiveKit services: every row's
router is in the app, its scopes guard its routes (a read needs its read scope or its
write scope, anything else its write scope), its gateway client is a property of
`LiveKit`, and every `Scope` guards something."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from app.auth.callers import Scope
from app.http.deps import ScopeCheck
from app.livekit.gateway import LiveKit
from app.livekit.services import LIVEKIT_SERVICES, LiveKitService
from app.main import create_app
from tests.conftest import make_settings

#: The methods of a read route; every other method writes.
READ_METHODS = {"GET"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    tmp_dir: Path = tmp_path_factory.mktemp("services")
    return create_app(make_settings("http://127.0.0.1:9", tmp_dir))


def _api_routes(app: FastAPI) -> list[RouteContext]:
    """The app's API routes as it serves them (FastAPI keeps an included router's routes
    behind one entry of `app.routes`; `iter_route_contexts` is what /openapi.json walks)."""
    return [
        route
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute)
    ]


def _scope_checks(dependant: Dependant) -> Iterator[ScopeCheck]:
    """Every `ScopeCheck` the route with `dependant` runs, at any depth."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, ScopeCheck):
            yield dependency.call
        yield from _scope_checks(dependency)


def _service_of(route: RouteContext) -> LiveKitService | None:
    return next((s for s in LIVEKIT_SERVICES if route.endpoint.__module__ == s.router), None)


@pytest.mark.parametrize("service", LIVEKIT_SERVICES, ids=lambda s: s.name)
def test_every_route_of_a_service_router_is_in_the_app(app: FastAPI, service: LiveKitService):
    router = importlib.import_module(service.router).router
    expected = {
        (route.path, frozenset(route.methods), route.endpoint)
        for route in router.routes
        if isinstance(route, APIRoute)
    }
    served = {(route.path, frozenset(route.methods), route.endpoint) for route in _api_routes(app)}
    assert expected, f"{service.router} has no routes"
    assert expected <= served, f"{service.router} is not included in the app"


@pytest.mark.parametrize("service", LIVEKIT_SERVICES, ids=lambda s: s.name)
def test_each_route_of_a_service_needs_its_scopes(app: FastAPI, service: LiveKitService):
    routes = [route for route in _api_routes(app) if _service_of(route) is service]
    assert routes
    for route in routes:
        checks = [check.scopes for check in _scope_checks(route.dependant)]
        reads = route.methods <= READ_METHODS
        wanted = service.read_scopes if reads else (service.write_scope,)
        assert checks == [wanted], f"{sorted(route.methods)} {route.path}: {checks}"


@pytest.mark.parametrize("service", LIVEKIT_SERVICES, ids=lambda s: s.name)
async def test_each_service_client_is_a_gateway_property(service: LiveKitService):
    lk = LiveKit("http://127.0.0.1:9", "APIservices", "secret-" * 6, 1.0)
    try:
        assert isinstance(getattr(LiveKit, service.client, None), property)
        assert getattr(lk, service.client) is getattr(lk._api, service.client)
    finally:
        await lk.aclose()


def test_every_scope_guards_something(app: FastAPI):
    guarding = {
        scope
        for route in _api_routes(app)
        for check in _scope_checks(route.dependant)
        for scope in check.scopes
    }
    # `tokens:issue` is checked by `app.http.deps.get_token_caller` (on /v1/token, a direct
    # route: `routers.direct`); `admin` includes them all.
    unused = set(Scope) - guarding - {Scope.TOKENS_ISSUE, Scope.ADMIN}
    assert not unused, f"scopes no route needs: {sorted(unused)}"
