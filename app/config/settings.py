"""Configuration from the environment (or a `.env` file), validated at start-up.

The variable names are part of the REST contract (`shared/api-contract.md`, Configuration).
In production, placeholder or short secrets, anonymous token callers, end-user JWTs without
issuer and audience, a relative SQLite path and an implicit `memory://` rate-limit storage
are refused with a message naming the setting, so a misconfigured replica never starts.

Secrets (`LIVEKIT_API_SECRET`, `LIVEKIT_WEBHOOK_KEYS`, `SERVICE_KEYS[].key`,
`DATABASE_URL`, the end-user HS256 secret) are `SecretStr`, and validation errors never
repeat the input (`hide_input_in_errors`). `load_settings()` is how the process reads its
settings: any error becomes a `ConfigurationError` whose message names the setting and what
is wrong with it (the line and column of a JSON or YAML syntax error, the path of a field
inside it), never any text of the value: a policy or key file with a syntax error next to a
secret must not print the secret (as a parser's excerpt of the line would).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.auth.callers import ServiceKey
from app.auth.policy import TokenPolicy, default_development_policy
from app.config.sources import (
    describe_validation_error,
    models_in,
    parse_json,
    parse_json_or_yaml,
    read_at_path,
)
from app.http.ratelimits import Strategy
from app.server_apis.urlpatterns import UrlAllowList

#: LiveKit's documented development key pair (`livekit-server --dev`).
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"

MIN_SECRET_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset(
    {"secret", "changeme", "change-me", "devkey", "password", "placeholder", "xxx", "todo"}
)


def _is_placeholder(secret: str) -> bool:
    lowered = secret.lower()
    return lowered in PLACEHOLDER_SECRETS or lowered.startswith(("change", "your-", "<"))


class Settings(BaseSettings):
    """Every setting of the service; see `.env.example` for a commented list."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    app_env: Literal["development", "production"] = "development"
    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: SecretStr | None = None
    livekit_public_url: str | None = None
    livekit_webhook_keys: Annotated[dict[str, SecretStr], NoDecode] = Field(default_factory=dict)
    livekit_timeout_seconds: float = Field(default=5.0, gt=0)
    sip_call_timeout_seconds: float = Field(default=40.0, gt=2)
    service_keys: Annotated[list[ServiceKey], NoDecode] = Field(default_factory=list)
    token_policy: Annotated[TokenPolicy | None, NoDecode] = None
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/events.db")
    #: Seconds to open one database connection; past it the request answers 503.
    database_connect_timeout_seconds: float = Field(default=3.0, gt=0)
    #: Seconds one database statement may run (PostgreSQL); past it the request answers 503.
    database_command_timeout_seconds: float = Field(default=4.0, gt=0)
    rate_limit_storage_url: str = "memory://"
    #: How `/v1/token`'s rate limits count hits (`app.http.ratelimits`).
    rate_limit_strategy: Strategy = "fixed-window"
    webhook_retention_days: int = Field(default=30, ge=0)
    #: Seconds a `/readyz` check's result is answered again without probing (`app.core.readiness`).
    readyz_cache_seconds: float = Field(default=2.0, ge=0)
    #: Event streams (`/v1/webhooks/events/stream`) one service key may hold open at once,
    #: per process (`app.events.streams`).
    stream_max_per_key: int = Field(default=5, ge=1)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    media_url_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    _media_url_allow_list: UrlAllowList = PrivateAttr(default_factory=UrlAllowList)
    #: The recordings catalog's object store (S3 API; `app.recordings`): where `DELETE` and
    #: the retention purge remove objects, what download links point at, and the upload
    #: target of an egress start that names none. Set the bucket (and its keys) to enable.
    recordings_s3_endpoint: str | None = None
    recordings_s3_bucket: str | None = None
    recordings_s3_region: str = "us-east-1"
    recordings_s3_access_key: str | None = None
    recordings_s3_secret: SecretStr | None = None
    #: Days after its end a recording (object and entry) is deleted; None keeps them.
    recordings_retention_days: int | None = Field(default=None, ge=1)
    #: Seconds a recording's `download_url` stays valid (SigV4 allows at most 7 days).
    recordings_link_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    host: str = "127.0.0.1"
    port: int = 8000
    #: Proxies whose `X-Forwarded-For`/`-Proto` are believed (comma-separated addresses or
    #: networks, `*` for any); none by default, so a caller cannot pick its client address.
    forwarded_allow_ips: str = ""
    #: uvicorn's HTTP/1.1 parser: `auto` (httptools when installed, else h11), `h11` (bounds
    #: the buffered request head itself), or `httptools`.
    http_parser: Literal["auto", "h11", "httptools"] = "auto"
    log_level: str = "info"
    #: `json` (one JSON object per line) or `text` (for people); default: json in
    #: production, text in development.
    log_format: Literal["json", "text"] | None = None
    cors_allow_origins: Annotated[list[str] | None, NoDecode] = None

    @field_validator("livekit_webhook_keys", mode="before")
    @classmethod
    def _parse_key_pairs(cls, value: Any) -> Any:
        """`key:secret,key2:secret2` -> {"key": "secret", ...}; an error names the item's
        position, never its text (it may hold a secret)."""
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        items = [part.strip() for part in value.split(",")]
        for position, item in enumerate(filter(None, items), start=1):
            key, sep, secret = item.partition(":")
            if not sep or not key or not secret:
                raise ValueError(f"item {position} is not a key:secret pair")
            pairs[key] = secret
        return pairs

    @field_validator("cors_allow_origins", "media_url_allow", mode="before")
    @classmethod
    def _parse_comma_list(cls, value: Any, info: ValidationInfo) -> Any:
        """`a,b` -> `["a", "b"]`, blank entries dropped: CORS origins (`https://a.example`,
        `*`; a trailing `/` dropped) or MEDIA_URL_ALLOW patterns (see
        `app.server_apis.urlpatterns`)."""
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if info.field_name == "cors_allow_origins":
                parts = [part.rstrip("/") for part in parts]
            return parts
        return value

    @field_validator("service_keys", mode="before")
    @classmethod
    def _parse_service_keys(cls, value: Any) -> Any:
        value = read_at_path(value)
        return parse_json(value) if isinstance(value, str) else value

    @field_validator("service_keys", mode="after")
    @classmethod
    def _unique_key_names(cls, keys: list[ServiceKey]) -> list[ServiceKey]:
        """A key's name keys its idempotency keys and rate limits (and is what logs show):
        two keys with one name would share them. Refused, naming the name."""
        names = [key.name for key in keys]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                "service key names must be unique (a name keys the caller's idempotency keys "
                f"and rate limits): {', '.join(map(repr, repeated))} is given more than once"
            )
        return keys

    @field_validator("database_url", mode="after")
    @classmethod
    def _parse_database_url(cls, value: SecretStr) -> SecretStr:
        try:
            make_url(value.get_secret_value())
        except ArgumentError:
            raise ValueError(
                "not an SQLAlchemy URL (e.g. sqlite+aiosqlite:///path/events.db or "
                "postgresql+asyncpg://user:password@host/db)"
            ) from None
        return value

    @field_validator("token_policy", mode="before")
    @classmethod
    def _parse_policy(cls, value: Any) -> Any:
        value = read_at_path(value)
        if isinstance(value, str):
            return parse_json_or_yaml(value) if value.strip() else None
        return value

    @model_validator(mode="after")
    def _parse_media_url_allow(self) -> Settings:
        """MEDIA_URL_ALLOW's patterns, parsed once (`app.server_apis.urlpatterns`); an invalid one
        is a
        settings error naming it."""
        self._media_url_allow_list = UrlAllowList.parse(self.media_url_allow)
        return self

    @field_validator("recordings_s3_endpoint")
    @classmethod
    def _check_recordings_endpoint(cls, value: str | None) -> str | None:
        """An http(s) URL with a host (the S3 API's root: no path, query or credentials)."""
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            raise ValueError("must be an http:// or https:// URL of the S3 endpoint")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("must be the S3 endpoint's root URL (no path or query)")
        return value

    @model_validator(mode="after")
    def _check_environment(self) -> Settings:
        if self.recordings_s3_bucket and not (
            self.recordings_s3_access_key and self.recordings_s3_secret
        ):
            raise ValueError(
                "RECORDINGS_S3_BUCKET needs RECORDINGS_S3_ACCESS_KEY and RECORDINGS_S3_SECRET"
            )
        if self.app_env == "production":
            self._refuse_weak_production_settings()
        return self

    def _refuse_weak_production_settings(self) -> None:
        problems: list[str] = []
        if not self.livekit_url:
            problems.append("LIVEKIT_URL must be set in production")
        if not self.livekit_api_key:
            problems.append("LIVEKIT_API_KEY must be set in production")
        secrets = {"LIVEKIT_API_SECRET": self.livekit_api_secret or SecretStr("")}
        secrets |= {f"LIVEKIT_WEBHOOK_KEYS[{k}]": s for k, s in self.livekit_webhook_keys.items()}
        secrets |= {f"SERVICE_KEYS[{k.name}].key": k.key for k in self.service_keys}
        policy = self.token_policy
        end_users = policy.end_users if policy else None
        if end_users and end_users.hs256_secret:
            secrets["TOKEN_POLICY.end_users.hs256_secret"] = end_users.hs256_secret
        for name, secret in secrets.items():
            value = secret.get_secret_value()
            if _is_placeholder(value) or len(value) < MIN_SECRET_LENGTH:
                problems.append(
                    f"{name} is a placeholder or shorter than {MIN_SECRET_LENGTH} characters"
                )
        if policy and policy.anonymous is not None:
            problems.append("TOKEN_POLICY.anonymous is not allowed in production")
        if end_users and not (end_users.issuer and end_users.audience):
            problems.append(
                "TOKEN_POLICY.end_users needs both issuer and audience in production "
                "(a token from any issuer, or meant for another service, would be accepted)"
            )
        database = make_url(self.database_url.get_secret_value())
        path = database.database or ""
        if database.get_backend_name() == "sqlite" and not (
            path == ":memory:" or path.startswith("file:") or Path(path).is_absolute()
        ):
            problems.append(
                "DATABASE_URL names a relative SQLite path, which depends on the working "
                "directory: give an absolute path (sqlite+aiosqlite:////var/lib/...)"
            )
        if "rate_limit_storage_url" not in self.model_fields_set:
            problems.append(
                "RATE_LIMIT_STORAGE_URL must be set explicitly in production: the service "
                "cannot know how many replicas run, and memory:// counts each caller's "
                "requests per replica (set memory:// for one replica, redis://... for several)"
            )
        if problems:
            raise ValueError("refusing to start with APP_ENV=production: " + "; ".join(problems))

    @property
    def is_development(self) -> bool:
        """True when APP_ENV=development."""
        return self.app_env == "development"

    @property
    def api_key(self) -> str:
        """The key that signs tokens and API calls (LiveKit's dev key when unset in dev)."""
        return self.livekit_api_key or DEV_API_KEY

    @property
    def api_secret(self) -> str:
        """The secret paired with `api_key`."""
        if self.livekit_api_secret is None:
            return DEV_API_SECRET
        return self.livekit_api_secret.get_secret_value()

    @property
    def server_url(self) -> str:
        """The URL handed to clients: LIVEKIT_PUBLIC_URL, else LIVEKIT_URL, as ws(s)://."""
        url = self.livekit_public_url or self.livekit_url or ""
        return url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)

    @property
    def keyring(self) -> dict[str, str]:
        """Every accepted API key -> secret: the main pair first, then LIVEKIT_WEBHOOK_KEYS
        (which cannot replace the main key's secret)."""
        extra = {
            key: secret.get_secret_value()
            for key, secret in self.livekit_webhook_keys.items()
            if key != self.api_key
        }
        return {self.api_key: self.api_secret, **extra}

    @property
    def media_url_allow_list(self) -> UrlAllowList:
        """MEDIA_URL_ALLOW as parsed at load: what LiveKit's workers may be sent to."""
        return self._media_url_allow_list

    @property
    def effective_cors_origins(self) -> list[str]:
        """CORS_ALLOW_ORIGINS, else `["*"]` in development and none in production."""
        if self.cors_allow_origins is not None:
            return self.cors_allow_origins
        return ["*"] if self.is_development else []

    @property
    def effective_token_policy(self) -> TokenPolicy:
        """TOKEN_POLICY, or the development default (anonymous may join any room)."""
        if self.token_policy is not None:
            return self.token_policy
        return default_development_policy() if self.is_development else TokenPolicy()


class ConfigurationError(Exception):
    """The settings cannot be used. The message names each setting that is wrong and what
    is wrong with it (the line and column of a syntax error, the path of a field inside a
    JSON or YAML value), never any text of a value: it is safe to print."""


def load_settings(**values: Any) -> Settings:
    """`Settings(**values)` (the environment, the `.env` file, then `values`), or
    `ConfigurationError` for any error in them: pydantic's validation errors are rendered
    without their input (nor a dictionary key they name, which may be text of a value),
    pydantic-settings' own and anything else by their kind only."""
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigurationError(describe_validation_error(error, _FIELD_NAMES)) from None
    except SettingsError as error:  # "error parsing value for field ...": names the field
        raise ConfigurationError(str(error).split("\n", 1)[0]) from None
    except Exception as error:  # anything unforeseen: its kind, never its text
        raise ConfigurationError(f"the settings cannot be read ({type(error).__name__})") from None


#: Every field name of the settings' models: what an error's location may show.
_FIELD_NAMES: frozenset[str] = frozenset(
    name for model in models_in(Settings) for name in model.model_fields
)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (`load_settings`)."""
    return load_settings()
