"""The settings a production replica refuses to start with (APP_ENV=production): LiveKit's
URL and key unset, placeholder or short secrets, anonymous token callers, end-user JWTs
without issuer and audience, a relative SQLite path and an implicit `memory://` rate-limit
storage. Each refusal names the setting, never its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from app.config.settings import Settings

#: The shortest secret accepted in production, and the values refused whatever their length
#: (compared lower-cased).
MIN_SECRET_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset(
    {"secret", "changeme", "change-me", "devkey", "password", "placeholder", "xxx", "todo"}
)


def _is_placeholder(secret: str) -> bool:
    lowered = secret.lower()
    return lowered in PLACEHOLDER_SECRETS or lowered.startswith(("change", "your-", "<"))


def refuse_weak_production_settings(settings: Settings) -> None:
    """Raise `ValueError` listing every production refusal `settings` calls for (see the
    module doc), in one message starting `refusing to start with APP_ENV=production: `;
    nothing when there is none. A secret counts as weak when it is shorter than
    `MIN_SECRET_LENGTH` characters or a placeholder (`PLACEHOLDER_SECRETS`, or starting
    `change`, `your-` or `<`)."""
    problems: list[str] = []
    if not settings.livekit_url:
        problems.append("LIVEKIT_URL must be set in production")
    if not settings.livekit_api_key:
        problems.append("LIVEKIT_API_KEY must be set in production")
    secrets = {"LIVEKIT_API_SECRET": settings.livekit_api_secret or SecretStr("")}
    secrets |= {f"LIVEKIT_WEBHOOK_KEYS[{k}]": s for k, s in settings.livekit_webhook_keys.items()}
    secrets |= {f"SERVICE_KEYS[{k.name}].key": k.key for k in settings.service_keys}
    policy = settings.token_policy
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
    database = make_url(settings.database_url.get_secret_value())
    path = database.database or ""
    if database.get_backend_name() == "sqlite" and not (
        path == ":memory:" or path.startswith("file:") or Path(path).is_absolute()
    ):
        problems.append(
            "DATABASE_URL names a relative SQLite path, which depends on the working "
            "directory: give an absolute path (sqlite+aiosqlite:////var/lib/...)"
        )
    if "rate_limit_storage_url" not in settings.model_fields_set:
        problems.append(
            "RATE_LIMIT_STORAGE_URL must be set explicitly in production: the service "
            "cannot know how many replicas run, and memory:// counts each caller's "
            "requests per replica (set memory:// for one replica, redis://... for several)"
        )
    if problems:
        raise ValueError("refusing to start with APP_ENV=production: " + "; ".join(problems))
