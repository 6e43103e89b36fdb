"""A request with two members of one protobuf oneof is a 422 problem naming both fields,
checked before LiveKit is called (the app here points at a port nothing listens on)."""

from __future__ import annotations

from tests.conftest import auth

NOWHERE = "http://127.0.0.1:9"


async def test_two_upload_backends_in_a_room_egress_are_422_naming_both(app_client):
    body = {
        "name": "r",
        "egress": {"tracks": {"filepath": "t.ogg", "s3": {"bucket": "b"}, "gcp": {"bucket": "b"}}},
    }
    async with app_client(NOWHERE) as http:
        response = await http.post("/v1/rooms", json=body, headers=auth("admin"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_failed"
    [error] = problem["errors"]
    assert error["loc"][:3] == ["body", "egress", "tracks"]
    assert "`s3` and `gcp` are both given" in error["msg"]
    assert "exactly one of" in error["msg"]
    assert "should not have multiple" not in response.text  # protobuf's own wording


async def test_openapi_documents_the_oneof(app_client):
    async with app_client(NOWHERE) as http:
        schemas = (await http.get("/openapi.json")).json()["components"]["schemas"]
    tracks = schemas["AutoTrackEgress"]
    assert "oneof `output`: exactly one of `s3`, `gcp`, `azure`, `aliOSS`" in tracks["description"]
    assert tracks["properties"]["s3"]["x-oneof"] == "output"
