"""The same-stack ceiling: FastAPI on uvicorn (uvloop, httptools), a POST route with a
validated body and a constant reply, as cheap as a route on this stack gets.

`POST /v1/token` takes the token request's fields and answers a constant token response;
`POST /v1/webhooks/livekit` reads the body and answers a constant receipt (the webhook
load generator's ceiling is measured against it). Run by `python -m bench` only.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from pydantic import BaseModel

app = FastAPI()

CONSTANT_TOKEN = {
    "server_url": "ws://127.0.0.1:7880",
    "participant_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + "x" * 300 + ".sig",
    "room_name": "bench",
    "participant_identity": "p",
    "participant_name": "",
}


class TokenRequest(BaseModel):
    """The token request's fields, validated as the service validates them."""

    room_name: str | None = None
    participant_identity: str | None = None
    participant_name: str | None = None
    participant_metadata: str | None = None
    participant_attributes: dict[str, str] | None = None


@app.post("/v1/token", status_code=201)
async def token(body: TokenRequest) -> dict[str, str]:
    """A constant token response."""
    return CONSTANT_TOKEN


@app.post("/v1/webhooks/livekit")
async def webhook(request: Request) -> dict[str, object]:
    """Read the body, answer a constant receipt."""
    await request.body()
    return {"id": "EV_x", "event": "room_started", "duplicate": False}
