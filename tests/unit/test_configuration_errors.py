"""A configuration error never prints a secret: `python -m app` with a broken TOKEN_POLICY,
SERVICE_KEYS or LIVEKIT_WEBHOOK_KEYS exits 1 with a message naming the setting (and the line
and column of a syntax error), without a traceback; and over random corruptions of valid
configurations holding random secrets, start-up validation (`load_settings`, as `python -m
app` runs it) shows no 8-character piece of any secret, in its output or its exception."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import string
import subprocess
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config.settings import ConfigurationError, load_settings
from app.core.devserver import PROJECT_ROOT

#: The variables start-up reads that these tests set; any other of them is cleared.
PREFIXES = ("LIVEKIT_", "SERVICE_KEYS", "TOKEN_POLICY", "APP_ENV", "DATABASE_", "RATE_LIMIT")
PIECE = 8


def pieces(secret: str) -> set[str]:
    """Every `PIECE`-character substring of `secret`."""
    return {secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1)}


def leaked(output: str, secret_values: list[str]) -> list[str]:
    """The pieces of the secrets that appear in `output`."""
    return sorted(p for s in secret_values for p in pieces(s) if p in output)


def policy(hs256_secret: str) -> dict[str, Any]:
    return {
        "end_users": {
            "hs256_secret": hs256_secret,
            "issuer": "https://idp.example",
            "audience": "control-plane",
            "rule": {"rooms": ["user-{identity}-*"], "ttl_seconds": 300},
        },
        "service_keys": {"rooms": ["*"], "agents": ["helper"]},
    }


def service_keys(keys: list[str]) -> list[dict[str, Any]]:
    return [
        {"name": f"svc-{i}", "key": key, "scopes": ["rooms:read"]} for i, key in enumerate(keys)
    ]


# --- `python -m app`, a few fixed cases ------------------------------------------------------

SECRET = "Hs256-" + secrets.token_urlsafe(30)
KEY = "Key-" + secrets.token_urlsafe(30)

POLICY_YAML = yaml.safe_dump(policy(SECRET), sort_keys=False)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        # an unterminated quote right after the secret: PyYAML's excerpt would show it
        ({"TOKEN_POLICY": POLICY_YAML.replace(SECRET, f'"{SECRET}')}, "starts at line 2"),
        ({"TOKEN_POLICY": POLICY_YAML.replace(SECRET, f"{SECRET}\n\t- x")}, "line 3, column 1"),
        ({"TOKEN_POLICY": POLICY_YAML.replace(SECRET, f"*{SECRET}")}, "ComposerError"),
        ({"TOKEN_POLICY": json.dumps(policy(SECRET)).replace(f'"{SECRET}"', f'"{SECRET}" x')},
         "line 1, column"),
        ({"TOKEN_POLICY": json.dumps(policy(SECRET)).replace(f'"{SECRET}"', f'{{"{SECRET}": 1}}')},
         "end_users.hs256_secret"),
        ({"TOKEN_POLICY": json.dumps({**policy(SECRET), SECRET: {}})}, "<key>"),
        ({"SERVICE_KEYS": json.dumps(service_keys([KEY]))[:-9]}, "line 1, column"),
        ({"SERVICE_KEYS": json.dumps(service_keys([KEY]) * 2)}, "'svc-0' is given more than once"),
        ({"LIVEKIT_WEBHOOK_KEYS": f"APIold{KEY}"}, "item 1"),
    ],
    ids=["yaml-quote", "yaml-tab", "yaml-alias", "json-syntax", "json-type", "json-key",
         "keys-truncated", "keys-duplicate-name", "webhook-keys"],
)  # fmt: skip
def test_python_m_app_exits_naming_the_setting_without_a_secret(tmp_path: Path, env, named):
    [(name, value)] = env.items()
    if name == "TOKEN_POLICY":  # from a file, as operators keep policies
        (tmp_path / "policy.yaml").write_text(value)
        env = {name: f"@{tmp_path / 'policy.yaml'}"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    result = subprocess.run(
        [sys.executable, "-m", "app"],
        env={**clean, "PYTHONPATH": str(PROJECT_ROOT), "LIVEKIT_URL": "http://127.0.0.1:9", **env},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    output = result.stderr + result.stdout
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert output.startswith(f"configuration error: {name}: "), output
    assert named in output, output
    assert not leaked(output, [SECRET, KEY]), output


# --- start-up validation over corrupted configurations ---------------------------------------

#: What a corruption inserts: quotes, brackets, tabs, YAML's indicators, separators ...
INSERTS = ['"', "'", "{", "}", "[", "]", "\t", "\n", ":", ",", "- ", "*", "&", "!", "#", "%",
           "\\", "|", ">", "@", "`", "? ", "\u2028", "null", "true", "1e999"]  # fmt: skip
#: How a corruption changes a secret's value: wrong types, keys, YAML aliases and tags.
RETYPES = ["[{s}]", "{{{s}: 1}}", '{{"{s}": 1}}', "{s}", "*{s}", "!{s} x", "&{s} [", "{s}: {s}",
           '["{s}"', '"{s}', "{s}\"", "1{s}", "'{s}"]  # fmt: skip

secret_values = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=24,
                        max_size=48)  # fmt: skip


@st.composite
def corrupted(draw: st.DrawFn, text: str, in_text: list[str]) -> str:
    """`text` with one to three corruptions at random positions, half of them next to or
    inside a secret (where a parser's excerpt of the line would show it): cut short, a
    character deleted, something inserted (`INSERTS`), or a secret's value retyped
    (`RETYPES`)."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "delete", "insert", "retype"]))
        near = [text.find(s) for s in in_text if s in text]
        if near and draw(st.booleans()):
            start = draw(st.sampled_from(near))
            at = min(max(start + draw(st.integers(-12, 60)), 0), max(len(text) - 1, 0))
        else:
            at = draw(st.integers(0, max(len(text) - 1, 0)))
        if kind == "truncate":
            text = text[:at]
        elif kind == "delete":
            text = text[:at] + text[at + 1 :]
        elif kind == "insert":
            text = text[:at] + draw(st.sampled_from(INSERTS)) + text[at:]
        else:
            secret = draw(st.sampled_from(in_text))
            quoted = f'"{secret}"' if f'"{secret}"' in text else secret
            text = text.replace(quoted, draw(st.sampled_from(RETYPES)).format(s=secret), 1)
    return text


@st.composite
def configurations(draw: st.DrawFn) -> tuple[dict[str, str], list[str]]:
    """The environment of a valid configuration holding random secrets, with one of its
    settings corrupted; and the secrets."""
    hs256, webhook, api = draw(secret_values), draw(secret_values), draw(secret_values)
    keys = draw(st.lists(secret_values, min_size=1, max_size=3))
    style = draw(st.sampled_from(["json", "json-indented", "yaml", "yaml-flow"]))
    policy_text = {
        "json": json.dumps(policy(hs256)),
        "json-indented": json.dumps(policy(hs256), indent=2),
        "yaml": yaml.safe_dump(policy(hs256)),
        "yaml-flow": yaml.safe_dump(policy(hs256), default_flow_style=True),
    }[style]
    env = {
        "APP_ENV": draw(st.sampled_from(["development", "production"])),
        "LIVEKIT_URL": "wss://example.livekit.cloud",
        "LIVEKIT_API_KEY": "APIprod",
        "LIVEKIT_API_SECRET": api,
        "LIVEKIT_WEBHOOK_KEYS": f"APIold:{webhook},APIolder:{api}",
        "SERVICE_KEYS": json.dumps(service_keys(keys), indent=draw(st.sampled_from([None, 2]))),
        "TOKEN_POLICY": policy_text,
        "DATABASE_URL": f"postgresql+asyncpg://cp:{api}@db/events",
        "RATE_LIMIT_STORAGE_URL": "memory://",
    }
    name = draw(st.sampled_from(["TOKEN_POLICY", "SERVICE_KEYS", "LIVEKIT_WEBHOOK_KEYS"]))
    in_text = [s for s in (hs256, webhook, api, *keys) if s in env[name]]
    env[name] = draw(corrupted(env[name], in_text))
    return env, [hs256, webhook, api, *keys]


def validate(env: dict[str, str]) -> str:
    """Run start-up validation on `env` as `python -m app` does; what a person could see of
    it: stdout, stderr, warnings, and the error with its traceback (empty when valid)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, {**clean, **env}, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        try:
            load_settings(_env_file=None)
            shown = ""
        except ConfigurationError as error:  # anything else fails the test
            shown = str(error) + repr(error) + "".join(traceback.format_exception(error))
            assert str(error).strip(), "an error without a message"
    notes = "".join(str(w.message) for w in caught)
    return out.getvalue() + err.getvalue() + notes + shown


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_corrupted_configurations_never_show_a_piece_of_a_secret(case):
    env, secret_values_ = case
    output = validate(env)
    assert not leaked(output, secret_values_), output


def test_the_fuzzed_configurations_are_valid_before_corruption():
    """The corruptions are what fails: every uncorrupted configuration starts."""
    for style in (json.dumps, yaml.safe_dump):
        env = {
            "APP_ENV": "production",
            "LIVEKIT_URL": "wss://example.livekit.cloud",
            "LIVEKIT_API_KEY": "APIprod",
            "LIVEKIT_API_SECRET": SECRET,
            "LIVEKIT_WEBHOOK_KEYS": f"APIold:{KEY}",
            "SERVICE_KEYS": json.dumps(service_keys([KEY])),
            "TOKEN_POLICY": style(policy(SECRET)),
            "DATABASE_URL": f"postgresql+asyncpg://cp:{SECRET}@db/events",
            "RATE_LIMIT_STORAGE_URL": "memory://",
        }
        assert validate(env) == ""
