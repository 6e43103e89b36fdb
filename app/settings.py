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

import json
import typing
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
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

from app.auth import ServiceKey
from app.policy import TokenPolicy, default_development_policy
from app.ratelimits import Strategy
from app.urlpatterns import UrlAllowList

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


def _read_at_path(value: Any) -> Any:
    """Resolve the `@path` form: the text of that file, else the value unchanged.
    `ValueError` naming the path (never its text) when it cannot be read as UTF-8."""
    if isinstance(value, str) and value.startswith("@"):
        path = value[1:]
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    return value


def _parse_json(text: str) -> Any:
    """`text` as JSON; `ValueError` with the error's kind, line and column, never the text
    (a parser's excerpt of the line could show a secret)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:  # `msg` is one of json's fixed messages
        raise ValueError(
            f"not valid JSON ({exc.msg}) at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise ValueError("not valid JSON (nested too deeply)") from None


def _parse_json_or_yaml(text: str) -> Any:
    """`text` as JSON, else as YAML (`yaml.safe_load`); `ValueError` with the error's kind,
    line and column, never the text: PyYAML's message quotes the line around the error (and
    names such as an undefined alias or tag are text of the document). A document that
    starts like a JSON object is reported as JSON."""
    looks_like_json = text.lstrip().startswith("{")
    if looks_like_json:
        try:
            return json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            pass  # perhaps YAML's flow style (`{rooms: [a]}`)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if looks_like_json:
            _parse_json(text)  # raises with JSON's line and column
        raise ValueError(f"not valid YAML ({type(exc).__name__}){_yaml_marks(exc)}") from None
    except RecursionError:
        raise ValueError("not valid YAML (nested too deeply)") from None


def _yaml_marks(exc: yaml.YAMLError) -> str:
    """Where PyYAML found the problem (`problem_mark`), and where what it was reading
    started (`context_mark`: an unclosed quote or bracket), 1-based; only the positions."""
    problem = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    text = ""
    if problem is not None:
        text += f" at line {problem.line + 1}, column {problem.column + 1}"
    if context is not None and (problem is None or context.line != problem.line):
        text += f" (in what starts at line {context.line + 1}, column {context.column + 1})"
    return text


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
    #: How `/v1/token`'s rate limits count hits (`app.ratelimits`).
    rate_limit_strategy: Strategy = "fixed-window"
    webhook_retention_days: int = Field(default=30, ge=0)
    #: Seconds between reconciliations of the stored events with LiveKit's state
    #: (`app.reconcile`); 0 turns them off.
    reconcile_interval_seconds: float = Field(default=30.0, ge=0)
    #: Seconds a `/readyz` check's result is answered again without probing (`app.readiness`).
    readyz_cache_seconds: float = Field(default=2.0, ge=0)
    #: Event streams (`/v1/webhooks/events/stream`) one service key may hold open at once,
    #: per process (`app.streams`).
    stream_max_per_key: int = Field(default=5, ge=1)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    media_url_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    _media_url_allow_list: UrlAllowList = PrivateAttr(default_factory=UrlAllowList)
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
        `*`; a trailing `/` dropped) or MEDIA_URL_ALLOW patterns (see `app.urlpatterns`)."""
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            if info.field_name == "cors_allow_origins":
                parts = [part.rstrip("/") for part in parts]
            return parts
        return value

    @field_validator("service_keys", mode="before")
    @classmethod
    def _parse_service_keys(cls, value: Any) -> Any:
        value = _read_at_path(value)
        return _parse_json(value) if isinstance(value, str) else value

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
        value = _read_at_path(value)
        if isinstance(value, str):
            return _parse_json_or_yaml(value) if value.strip() else None
        return value

    @model_validator(mode="after")
    def _parse_media_url_allow(self) -> Settings:
        """MEDIA_URL_ALLOW's patterns, parsed once (`app.urlpatterns`); an invalid one is a
        settings error naming it."""
        self._media_url_allow_list = UrlAllowList.parse(self.media_url_allow)
        return self

    @model_validator(mode="after")
    def _check_environment(self) -> Settings:
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
        raise ConfigurationError(describe_validation_error(error)) from None
    except SettingsError as error:  # "error parsing value for field ...": names the field
        raise ConfigurationError(str(error).split("\n", 1)[0]) from None
    except Exception as error:  # anything unforeseen: its kind, never its text
        raise ConfigurationError(f"the settings cannot be read ({type(error).__name__})") from None


def describe_validation_error(error: ValidationError) -> str:
    """One line per error of a `Settings` validation: `SETTING: path.in.value: message`,
    the setting by its environment variable's name. Only what the service itself wrote is
    shown: messages without input, and of an error's location the indexes and the field
    names of the settings' models (an unknown key, a dictionary key, is `<key>`)."""
    lines = []
    for item in error.errors(include_url=False, include_context=False, include_input=False):
        loc = [str(part).upper() if i == 0 else part for i, part in enumerate(item["loc"])]
        path = "".join(_loc_part(part) for part in loc[1:]).lstrip(".")
        message = item["msg"].removeprefix("Value error, ")
        where = ": ".join(str(part) for part in (loc[0] if loc else None, path) if part)
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def _loc_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if part in _FIELD_NAMES else ".<key>"


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation holds (`list[ServiceKey]`, `TokenPolicy | None` ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        for field in annotation.model_fields.values():
            yield from _models_in(field.annotation)
    elif typing.get_origin(annotation) is not None:
        for argument in typing.get_args(annotation):
            yield from _models_in(argument)


#: Every field name of the settings' models: what an error's location may show.
_FIELD_NAMES: frozenset[str] = frozenset(
    name for model in _models_in(Settings) for name in model.model_fields
)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (`load_settings`)."""
    return load_settings()
