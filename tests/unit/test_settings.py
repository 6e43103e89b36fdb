"""Settings: contract variable names, parsing, and production refusing weak configuration."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.settings import Settings

STRONG = "s" * 40


def make(monkeypatch, **env: str) -> Settings:
    for name in list(__import__("os").environ):
        if name.startswith(("LIVEKIT_", "SERVICE_KEYS", "TOKEN_POLICY", "APP_ENV")):
            monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def production(**extra: str) -> dict[str, str]:
    return {
        "APP_ENV": "production",
        "LIVEKIT_URL": "wss://example.livekit.cloud",
        "LIVEKIT_API_KEY": "APIprod",
        "LIVEKIT_API_SECRET": STRONG,
        **extra,
    }


def test_production_with_placeholder_secret_refuses_to_start(monkeypatch):
    with pytest.raises(ValidationError, match=r"LIVEKIT_API_SECRET is a placeholder"):
        make(monkeypatch, **production(LIVEKIT_API_SECRET="secret"))


def test_production_with_short_secret_names_the_setting(monkeypatch):
    with pytest.raises(ValidationError, match=r"LIVEKIT_API_SECRET .*shorter than 32"):
        make(monkeypatch, **production(LIVEKIT_API_SECRET="x" * 31))


def test_production_refuses_weak_webhook_and_service_keys(monkeypatch):
    keys = json.dumps([{"name": "ci", "key": "changeme", "scopes": ["admin"]}])
    with pytest.raises(ValidationError) as caught:
        make(monkeypatch, **production(LIVEKIT_WEBHOOK_KEYS="old:short", SERVICE_KEYS=keys))
    assert "LIVEKIT_WEBHOOK_KEYS[old]" in str(caught.value)
    assert "SERVICE_KEYS[ci].key" in str(caught.value)


def test_production_refuses_anonymous_token_callers(monkeypatch):
    with pytest.raises(ValidationError, match=r"TOKEN_POLICY\.anonymous"):
        make(monkeypatch, **production(TOKEN_POLICY='{"anonymous": {}}'))


def test_production_without_policy_allows_no_anonymous_caller(monkeypatch):
    settings = make(monkeypatch, **production())
    assert settings.effective_token_policy.anonymous is None


def test_development_defaults(monkeypatch):
    settings = make(monkeypatch)
    assert settings.is_development
    assert settings.database_url == "sqlite+aiosqlite:///./data/events.db"
    assert settings.livekit_timeout_seconds == 5
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.effective_token_policy.anonymous is not None


def test_public_url_and_keyring(monkeypatch):
    settings = make(
        monkeypatch,
        LIVEKIT_URL="http://livekit:7880",
        LIVEKIT_PUBLIC_URL="https://rtc.example.com",
        LIVEKIT_API_KEY="k1",
        LIVEKIT_API_SECRET=STRONG,
        LIVEKIT_WEBHOOK_KEYS="k0:old-secret, k2:next-secret",
    )
    assert settings.server_url == "wss://rtc.example.com"
    assert settings.keyring == {"k0": "old-secret", "k2": "next-secret", "k1": STRONG}


def test_service_keys_and_policy_from_files(monkeypatch, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"name": "ops", "key": STRONG, "scopes": ["rooms:read"]}]))
    policy = tmp_path / "policy.yaml"
    policy.write_text("anonymous:\n  rooms: ['lobby-*']\n  ttl_seconds: 300\n")
    settings = make(monkeypatch, SERVICE_KEYS=f"@{keys}", TOKEN_POLICY=f"@{policy}")
    assert settings.service_keys[0].name == "ops"
    assert settings.effective_token_policy.anonymous.rooms == ["lobby-*"]


def test_malformed_webhook_keys_are_refused(monkeypatch):
    with pytest.raises(ValidationError, match="key:secret"):
        make(monkeypatch, LIVEKIT_WEBHOOK_KEYS="no-colon-here")
