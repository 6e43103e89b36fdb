"""End-user JWTs verified with a JWKS (app.auth.callers.EndUserVerifier), the key set served over
real HTTP on loopback (`LocalJWKS`): every token that does not verify is 401, never a 5xx;
the algorithm is the key's; the key set is fetched once for concurrent requests, again for
an unknown `kid` at most once, and not at all for a while after a failed fetch."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

import app.auth.callers
from app.auth.callers import EndUserAuth
from app.core.devserver import free_port
from tests.components import LocalJWKS

UNUSED_LIVEKIT = "http://127.0.0.1:9"  # the token route never calls LiveKit


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class IdentityProvider:
    """Signing keys of an identity provider: an RSA key (`rsa-1`, RS256) and an EC P-256
    key (`ec-1`, ES256), their JWKS, and tokens for user `sub`."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        keys = [
            {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key())),
             "kid": "rsa-1", "use": "sig", "alg": "RS256"},
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key())),
             "kid": "ec-1", "use": "sig", "alg": "ES256"},
        ]  # fmt: skip
        return {"keys": keys}

    @staticmethod
    def claims(sub: str = "user-1") -> dict[str, Any]:
        return {"sub": sub, "exp": int(time.time()) + 60}

    def rs256(self, kid: Any = "rsa-1", **claims: Any) -> str:
        return jwt.encode({**self.claims(), **claims}, self.rsa, "RS256", headers={"kid": kid})

    def es256(self, kid: str = "ec-1") -> str:
        return jwt.encode(self.claims(), self.ec, "ES256", headers={"kid": kid})

    def hs256_with_rsa_public_key(self) -> str:
        """The key-confusion attack: HS256 "signed" with the RSA public key's PEM, which
        anyone can fetch (PyJWT refuses to sign with it, so it is signed here by hand)."""
        pem = self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
        payload = b64url(json.dumps(self.claims()).encode())
        signature = hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{b64url(signature)}"

    def with_header(self, **header: Any) -> str:
        """An RS256 token whose header is then replaced by `header` (PyJWT would refuse to
        write some headers, e.g. a `kid` that is no string)."""
        _, payload, signature = self.rs256().split(".")
        return f"{b64url(json.dumps(header).encode())}.{payload}.{signature}"

    def unsigned(self) -> str:
        return jwt.encode(self.claims(), None, "none", headers={"kid": "rsa-1"})


@pytest.fixture(scope="module")
def idp() -> IdentityProvider:
    return IdentityProvider()


@pytest.fixture
def jwks(local_jwks: LocalJWKS, idp: IdentityProvider) -> LocalJWKS:
    local_jwks.document = idp.jwks()
    return local_jwks


def policy(jwks_url: str) -> dict[str, Any]:
    return {"end_users": {"jwks_url": jwks_url, "rule": {"rooms": ["*"]}}}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_refused(response: Any, *hidden: str) -> dict[str, Any]:
    """A 401 `invalid_user_token` problem with `WWW-Authenticate: Bearer`, whose text holds
    none of `hidden`."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    problem: dict[str, Any] = response.json()
    assert problem["code"] == "invalid_user_token"
    for text in hidden:
        assert text not in response.text
    return problem


async def test_tokens_signed_with_each_key_are_accepted(app_client, jwks, idp):
    async with app_client(UNUSED_LIVEKIT, token_policy=policy(jwks.url)) as http:
        for token in (idp.rs256(), idp.es256()):
            response = await http.post("/v1/token", headers=bearer(token))
            assert response.status_code == 201, response.text
            assert response.json()["participant_identity"] == "user-1"
    assert jwks.fetches == 1


@pytest.mark.parametrize(
    "forge",
    [
        lambda idp: idp.es256(kid="rsa-1"),  # ES256 with the RSA key's kid
        lambda idp: idp.rs256(kid="ec-1"),  # RS256 with the EC key's kid
        IdentityProvider.unsigned,  # alg none
        IdentityProvider.hs256_with_rsa_public_key,  # key confusion
        lambda idp: idp.with_header(alg="RS256", kid=["rsa-1"]),  # a kid that is no string
        lambda idp: idp.rs256(kid="unknown"),
        lambda idp: idp.rs256(exp=int(time.time()) - 60),
        lambda idp: idp.with_header(alg="RS256"),  # no kid, and two keys
        lambda idp: "not-a-jwt",
    ],
    ids=[
        "es256-rsa-kid",
        "rs256-ec-kid",
        "alg-none",
        "hs256-public-key",
        "kid-not-string",
        "unknown-kid",
        "expired",
        "no-kid",
        "garbage",
    ],
)
async def test_a_token_that_does_not_verify_is_401(app_client, jwks, idp, forge):
    async with app_client(UNUSED_LIVEKIT, token_policy=policy(jwks.url)) as http:
        response = await http.post("/v1/token", json={"room_name": "r"}, headers=bearer(forge(idp)))
        assert_refused(response, jwks.url, "127.0.0.1")


async def test_an_unknown_kid_refetches_the_key_set_once_at_most(
    app_client, jwks, idp, monkeypatch
):
    async with app_client(UNUSED_LIVEKIT, token_policy=policy(jwks.url)) as http:
        assert (await http.post("/v1/token", headers=bearer(idp.rs256()))).status_code == 201
        assert jwks.fetches == 1
        # just fetched: a made-up kid costs no fetch
        assert_refused(await http.post("/v1/token", headers=bearer(idp.rs256(kid="new"))))
        assert jwks.fetches == 1
        # once the key set is old enough, an unknown kid fetches it again, once
        monkeypatch.setattr(app.auth.callers, "UNKNOWN_KID_REFETCH_SECONDS", 0)
        assert_refused(await http.post("/v1/token", headers=bearer(idp.rs256(kid="new"))))
        assert jwks.fetches == 2
        # a key the identity provider has added is found that way
        added = idp.jwks()["keys"][0] | {"kid": "new"}
        jwks.document = {"keys": [*idp.jwks()["keys"], added]}
        response = await http.post("/v1/token", headers=bearer(idp.rs256(kid="new")))
        assert response.status_code == 201, response.text
        assert jwks.fetches == 3


async def test_concurrent_requests_with_a_cold_cache_share_one_fetch(app_client, jwks, idp):
    jwks.gate.clear()  # the fetch is held open until every request waits for it
    async with app_client(UNUSED_LIVEKIT, token_policy=policy(jwks.url)) as http:
        requests = [
            asyncio.create_task(http.post("/v1/token", headers=bearer(idp.rs256(sub=f"u{i}"))))
            for i in range(20)
        ]
        await asyncio.to_thread(jwks.requested.wait, 30)
        for _ in range(50):  # every request runs up to the fetch it waits for
            await asyncio.sleep(0)
        assert not any(r.done() for r in requests)
        jwks.gate.set()
        responses = await asyncio.gather(*requests)
    assert [r.status_code for r in responses] == [201] * 20
    assert jwks.fetches == 1


async def test_an_unavailable_key_set_is_401_without_its_url(app_client, idp, caplog):
    url = f"http://user:pw@127.0.0.1:{free_port()}/jwks?client_secret=s3cret"  # nobody listens
    async with app_client(UNUSED_LIVEKIT, token_policy=policy(url)) as http:
        with caplog.at_level(logging.WARNING, logger="app.auth.callers"):
            response = await http.post(
                "/v1/token", json={"room_name": "r"}, headers=bearer(idp.rs256())
            )
    problem = assert_refused(response, "127.0.0.1", "jwks", "s3cret", "pw")
    assert "cannot be fetched" in problem["detail"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "app.auth.callers")
    shown = url.replace("user:pw@", "").split("?")[0]
    assert shown in logged and "s3cret" not in logged and "pw@" not in logged


async def test_after_a_failed_fetch_callers_are_refused_without_another(
    app_client, jwks, idp, monkeypatch
):
    monkeypatch.setattr(app.auth.callers, "JWKS_RETRY_SECONDS", 3600)
    jwks.status = 503
    async with app_client(UNUSED_LIVEKIT, token_policy=policy(jwks.url)) as http:
        for _ in range(2):
            assert_refused(await http.post("/v1/token", headers=bearer(idp.rs256())))
        assert jwks.fetches == 1
        # once the retry delay is over, the next request fetches the key set again
        jwks.status = 200
        monkeypatch.setattr(app.auth.callers, "JWKS_RETRY_SECONDS", 0)
        assert (await http.post("/v1/token", headers=bearer(idp.rs256()))).status_code == 201
        assert jwks.fetches == 2


@pytest.mark.parametrize(
    "document",
    [[], {"keys": "none"}, {"keys": [{"kty": "RSA"}]}, {"keys": [{"kty": "nope", "kid": "x"}]}],
    ids=["not-an-object", "keys-not-a-list", "unusable-key", "unknown-kty"],
)
async def test_a_key_set_that_cannot_be_read_is_401(app_client, jwks, idp, document):
    jwks.document = document
    async with app_client(UNUSED_LIVEKIT, token_policy=policy(jwks.url)) as http:
        assert_refused(await http.post("/v1/token", headers=bearer(idp.rs256())), jwks.url)


@pytest.mark.parametrize("algorithms", [["HS256"], ["RS256", "HS512"], ["none"]])
def test_a_jwks_policy_admits_public_key_algorithms_only(algorithms):
    with pytest.raises(ValidationError, match="public-key algorithms"):
        EndUserAuth(jwks_url="https://idp.example/jwks", algorithms=algorithms)
