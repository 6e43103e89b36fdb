"""`GET /v1/auth/whoami`: the calling key's name and scopes, never the key itself."""

from __future__ import annotations

from app.auth.callers import Scope
from tests.conftest import KEYS, auth

UNUSED_LIVEKIT = "http://127.0.0.1:9"


async def test_whoami_names_the_key_and_its_scopes(app_client):
    async with app_client(UNUSED_LIVEKIT) as http:
        reader = await http.get("/v1/auth/whoami", headers=auth("reader"))
        admin = await http.get("/v1/auth/whoami", headers=auth("admin"))
        nobody = await http.get("/v1/auth/whoami", headers=auth("nobody"))
        anonymous = await http.get("/v1/auth/whoami")
    assert reader.json() == {"name": "reader", "scopes": ["rooms:read"], "allowed": ["rooms:read"]}
    assert admin.json()["allowed"] == [scope.value for scope in Scope]
    assert nobody.json() == {"name": "nobody", "scopes": [], "allowed": []}
    assert KEYS["admin"][0] not in admin.text
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
