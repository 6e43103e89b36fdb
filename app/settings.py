"""Configuration from the environment (or a `.env` file), validated at start-up.

The variable names are part of the REST contract (`shared/api-contract.md`, Configuration).
In production, placeholder or short secrets and anonymous token callers are refused with
a message naming the setting, so a misconfigured replica never starts.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.auth import ServiceKey
from app.tokens import TokenPolicy, default_development_policy

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
    """Resolve the `@path` form: the text of that file, else the value unchanged."""
    if isinstance(value, str) and value.startswith("@"):
        return Path(value[1:]).read_text(encoding="utf-8")
    return value


class Settings(BaseSettings):
    """Every setting of the service; see `.env.example` for a commented list."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    app_env: Literal["development", "production"] = "development"
    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: str | None = None
    livekit_public_url: str | None = None
    livekit_webhook_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    livekit_timeout_seconds: float = Field(default=5.0, gt=0)
    sip_call_timeout_seconds: float = Field(default=40.0, gt=2)
    service_keys: Annotated[list[ServiceKey], NoDecode] = Field(default_factory=list)
    token_policy: Annotated[TokenPolicy | None, NoDecode] = None
    database_url: str = "sqlite+aiosqlite:///./data/events.db"
    rate_limit_storage_url: str = "memory://"
    webhook_retention_days: int = Field(default=30, ge=0)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    @field_validator("livekit_webhook_keys", mode="before")
    @classmethod
    def _parse_key_pairs(cls, value: Any) -> Any:
        """`key:secret,key2:secret2` -> {"key": "secret", ...}."""
        if not isinstance(value, str):
            return value
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, secret = item.partition(":")
            if not sep or not key or not secret:
                raise ValueError(f"expected key:secret pairs, got {item.split(':')[0]!r}:…")
            pairs[key] = secret
        return pairs

    @field_validator("service_keys", mode="before")
    @classmethod
    def _parse_service_keys(cls, value: Any) -> Any:
        value = _read_at_path(value)
        return json.loads(value) if isinstance(value, str) else value

    @field_validator("token_policy", mode="before")
    @classmethod
    def _parse_policy(cls, value: Any) -> Any:
        value = _read_at_path(value)
        if isinstance(value, str):
            return yaml.safe_load(value) if value.strip() else None  # YAML is a superset of JSON
        return value

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
        secrets = {"LIVEKIT_API_SECRET": self.livekit_api_secret or ""}
        secrets |= {f"LIVEKIT_WEBHOOK_KEYS[{k}]": s for k, s in self.livekit_webhook_keys.items()}
        secrets |= {f"SERVICE_KEYS[{k.name}].key": k.key for k in self.service_keys}
        policy = self.token_policy
        if policy and policy.end_users and policy.end_users.hs256_secret:
            secrets["TOKEN_POLICY.end_users.hs256_secret"] = policy.end_users.hs256_secret
        for name, secret in secrets.items():
            if _is_placeholder(secret) or len(secret) < MIN_SECRET_LENGTH:
                problems.append(
                    f"{name} is a placeholder or shorter than {MIN_SECRET_LENGTH} characters"
                )
        if policy and policy.anonymous is not None:
            problems.append("TOKEN_POLICY.anonymous is not allowed in production")
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
        return self.livekit_api_secret or DEV_API_SECRET

    @property
    def server_url(self) -> str:
        """The URL handed to clients: LIVEKIT_PUBLIC_URL, else LIVEKIT_URL, as ws(s)://."""
        url = self.livekit_public_url or self.livekit_url or ""
        return url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)

    @property
    def keyring(self) -> dict[str, str]:
        """Every accepted API key -> secret: the main pair plus LIVEKIT_WEBHOOK_KEYS."""
        return {**self.livekit_webhook_keys, self.api_key: self.api_secret}

    @property
    def effective_token_policy(self) -> TokenPolicy:
        """TOKEN_POLICY, or the development default (anonymous may join any room)."""
        if self.token_policy is not None:
            return self.token_policy
        return default_development_policy() if self.is_development else TokenPolicy()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
