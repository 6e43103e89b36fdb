"""Who a service key is, as `GET /v1/auth/whoami` answers."""

from __future__ import annotations

from pydantic import BaseModel


class Whoami(BaseModel):
    """The calling key's `name`, its configured `scopes`, and `allowed`: every scope the key
    holds, implied ones included (`admin` holds all), so a client can tell what it may do."""

    name: str
    scopes: list[str]
    allowed: list[str]
