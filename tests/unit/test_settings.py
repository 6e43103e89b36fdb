"""Settings: contract variable names, parsing, and production refusing weak configuration."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from app.config.settings import ConfigurationError, Settings, load_settings

STRONG = "s" * 40


def make(monkeypatch, **env: str) -> Settings:
    for name in list(__import__("os").environ):
        if name.startswith(
            ("LIVEKIT_", "SERVICE_KEYS", "TOKEN_POLICY", "APP_ENV", "DATABASE_", "RATE_LIMIT")
        ):
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
        "DATABASE_URL": "sqlite+aiosqlite:////var/lib/control-plane/events.db",
        "RATE_LIMIT_STORAGE_URL": "redis://redis:6379/0",
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
    assert settings.database_url.get_secret_value() == "sqlite+aiosqlite:///./data/events.db"
    assert settings.livekit_timeout_seconds == 5
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.effective_token_policy.anonymous is not None
    assert settings.rate_limit_strategy == "fixed-window"


def test_rate_limit_strategy_takes_limits_names_only(monkeypatch):
    assert make(monkeypatch, RATE_LIMIT_STRATEGY="moving-window").rate_limit_strategy == (
        "moving-window"
    )
    with pytest.raises(ValidationError) as error:
        make(monkeypatch, RATE_LIMIT_STRATEGY="token-bucket")
    assert "rate_limit_strategy" in str(error.value)
    assert "'fixed-window', 'moving-window' or 'sliding-window-counter'" in str(error.value)


def test_public_url_and_keyring(monkeypatch):
    settings = make(
        monkeypatch,
        LIVEKIT_URL="http://livekit:7880",
        LIVEKIT_PUBLIC_URL="https://rtc.example.com",
        LIVEKIT_API_KEY="k1",
        LIVEKIT_API_SECRET=STRONG,
        LIVEKIT_WEBHOOK_KEYS="k0:old-secret, k2:next-secret, k1:not-the-main-secret",
    )
    assert settings.server_url == "wss://rtc.example.com"
    # The main key first (webhooks try it first), and its secret is the main one.
    assert list(settings.keyring.items()) == [
        ("k1", STRONG),
        ("k0", "old-secret"),
        ("k2", "next-secret"),
    ]


def test_service_keys_and_policy_from_files(monkeypatch, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"name": "ops", "key": STRONG, "scopes": ["rooms:read"]}]))
    policy = tmp_path / "policy.yaml"
    policy.write_text("anonymous:\n  rooms: ['lobby-*']\n  ttl_seconds: 300\n")
    settings = make(monkeypatch, SERVICE_KEYS=f"@{keys}", TOKEN_POLICY=f"@{policy}")
    assert settings.service_keys[0].name == "ops"
    assert settings.effective_token_policy.anonymous.rooms == ["lobby-*"]


def test_service_key_names_are_unique(monkeypatch):
    """A name keys the caller's idempotency keys and rate limits: two keys may not share it."""
    keys = [{"name": n, "key": k * 40} for n, k in (("ci", "a"), ("ops", "b"), ("ci", "c"))]
    with pytest.raises(ValidationError, match=r"'ci' is given more than once") as error:
        make(monkeypatch, SERVICE_KEYS=json.dumps(keys))
    assert "'ops'" not in str(error.value) and "a" * 40 not in str(error.value)
    distinct = make(monkeypatch, SERVICE_KEYS=json.dumps(keys[:2]))
    assert [key.name for key in distinct.service_keys] == ["ci", "ops"]


def test_an_unreadable_file_is_named_by_its_path(monkeypatch, tmp_path):
    make(monkeypatch)  # the environment cleared
    missing = tmp_path / "nowhere.yaml"
    monkeypatch.setenv("TOKEN_POLICY", f"@{missing}")
    with pytest.raises(ConfigurationError, match=rf"^TOKEN_POLICY: cannot read {missing}: "):
        load_settings(_env_file=None)
    (tmp_path / "latin1.json").write_bytes(b'[{"name": "caf\xe9"}]')
    monkeypatch.setenv("TOKEN_POLICY", "")
    monkeypatch.setenv("SERVICE_KEYS", f"@{tmp_path / 'latin1.json'}")
    with pytest.raises(ConfigurationError, match=r"^SERVICE_KEYS: .*latin1.json is not UTF-8"):
        load_settings(_env_file=None)


def test_malformed_webhook_keys_are_refused(monkeypatch):
    with pytest.raises(ValidationError, match="key:secret"):
        make(monkeypatch, LIVEKIT_WEBHOOK_KEYS="no-colon-here")


# --- configuration errors never print a secret; production fails closed -------------------

SECRET = "Sup3r-s3cret-value-that-must-not-leak-0123456789"


@pytest.mark.parametrize(
    "env",
    [
        {"LIVEKIT_WEBHOOK_KEYS": f"k1:ok-secret,{SECRET}"},
        {"LIVEKIT_WEBHOOK_KEYS": SECRET},
        {"SERVICE_KEYS": json.dumps([{"name": "ops", "key": SECRET, "scopes": ["nope"]}])},
        {"SERVICE_KEYS": f'[{{"name": "ops", "key": "{SECRET}"'},
        {"SERVICE_KEYS": json.dumps([{"name": "", "key": SECRET}])},
        {"DATABASE_URL": f"postgres//user:{SECRET}@db/events"},
        {"TOKEN_POLICY": json.dumps({"end_users": {"hs256_secret": SECRET, "jwks_url": "x"}})},
        {"TOKEN_POLICY": json.dumps({"end_users": {"hs256_secret": SECRET, "rule": {}}})},
    ],
    ids=["webhook-keys-item", "webhook-keys-bare", "service-key-scope", "service-keys-cut",
         "service-key-name", "database-url", "policy-two-sources", "policy-no-rooms"],
)  # fmt: skip
def test_a_configuration_error_names_the_setting_never_the_secret(monkeypatch, env):
    with pytest.raises(ValidationError) as error:
        make(monkeypatch, **env)
    message = str(error.value)
    assert SECRET not in message and SECRET[:12] not in message
    assert next(iter(env)).lower() in message.lower()  # the setting is named


def test_secrets_are_hidden_from_reprs(monkeypatch):
    keys = json.dumps([{"name": "ops", "key": SECRET, "scopes": ["admin"]}])
    settings = make(
        monkeypatch,
        LIVEKIT_API_SECRET=SECRET,
        LIVEKIT_WEBHOOK_KEYS=f"k0:{SECRET}",
        SERVICE_KEYS=keys,
        DATABASE_URL=f"postgresql+asyncpg://u:{SECRET}@db/events",
    )
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert settings.api_secret == SECRET and settings.keyring["k0"] == SECRET


HS256_USERS = {"hs256_secret": STRONG, "rule": {"rooms": ["u-*"]}}
JWKS_USERS = {"jwks_url": "https://idp/jwks", "rule": {"rooms": ["u-*"]}}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"DATABASE_URL": "sqlite+aiosqlite:///./data/events.db"}, "relative SQLite path"),
        ({"DATABASE_URL": "sqlite+aiosqlite:///events.db"}, "relative SQLite path"),
        ({"RATE_LIMIT_STORAGE_URL": None}, "RATE_LIMIT_STORAGE_URL must be set explicitly"),
        (
            {"TOKEN_POLICY": json.dumps({"end_users": {**HS256_USERS}})},
            "needs both issuer and audience",
        ),
        (
            {"TOKEN_POLICY": json.dumps({"end_users": {**JWKS_USERS, "issuer": "https://idp"}})},
            "needs both issuer and audience",
        ),
    ],
    ids=["relative-sqlite", "bare-sqlite", "implicit-memory-rate-limits", "hs256-no-iss-aud",
         "jwks-no-aud"],
)  # fmt: skip
def test_production_refuses_what_fails_open(monkeypatch, extra, named):
    env = production(**{k: v for k, v in extra.items() if v is not None})
    for name in [k for k, v in extra.items() if v is None]:
        env.pop(name)
    with pytest.raises(ValidationError, match=named) as error:
        make(monkeypatch, **env)
    if "RATE_LIMIT" in named:
        assert "replica" in str(error.value)  # says why the service cannot tell


def test_production_accepts_explicit_memory_rate_limits_and_complete_end_user_settings(
    monkeypatch,
):
    policy = {
        "end_users": {
            "hs256_secret": STRONG,
            "issuer": "https://idp.example",
            "audience": "control-plane",
            "rule": {"rooms": ["user-{identity}-*"]},
        }
    }
    settings = make(
        monkeypatch,
        **production(RATE_LIMIT_STORAGE_URL="memory://", TOKEN_POLICY=json.dumps(policy)),
    )
    assert settings.rate_limit_storage_url == "memory://"


def test_the_recordings_store_secret_is_hidden_and_a_bucket_needs_its_keys(monkeypatch):
    settings = make(
        monkeypatch,
        RECORDINGS_S3_ENDPOINT="http://127.0.0.1:8333",
        RECORDINGS_S3_BUCKET="recordings",
        RECORDINGS_S3_ACCESS_KEY="AKIA",
        RECORDINGS_S3_SECRET=SECRET,
        RECORDINGS_RETENTION_DAYS="30",
    )
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    assert settings.recordings_link_seconds == 3600 and settings.recordings_retention_days == 30
    monkeypatch.delenv("RECORDINGS_S3_SECRET")
    with pytest.raises(ValidationError, match="RECORDINGS_S3_SECRET"):
        make(monkeypatch)


@pytest.mark.parametrize(
    "endpoint", ["ftp://s3.example.com", "http://s3.example.com/bucket", "s3.example.com"]
)
def test_the_recordings_endpoint_is_an_http_root_url(monkeypatch, endpoint):
    with pytest.raises(ValidationError) as error:
        make(monkeypatch, RECORDINGS_S3_ENDPOINT=endpoint)
    assert "recordings_s3_endpoint" in str(error.value).lower()
