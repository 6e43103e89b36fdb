"""The relay's rules without the network: which addresses an endpoint may resolve to
(`app.events.endpoint_urls`), the URL forms allowed, WEBHOOK_ENDPOINT_ALLOW as a setting, the
retry schedule and `Retry-After`, the filters, and signatures made with `standardwebhooks`
that the library verifies, with one secret or two after a rotation."""

from __future__ import annotations

import datetime as dt
import email.utils
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook

from app.core.errors import InvalidInput
from app.events.delivery_attempts import (
    RETRY_SCHEDULE_SECONDS,
    Outcome,
    next_state,
    retry_after_seconds,
    signature_header,
)
from app.events.endpoint_urls import AddressAllowList, AddressRefused, EndpointUrlRules
from app.events.outbox import matches
from app.events.webhook_endpoints import new_secret
from tests.unit.test_settings import make, production

NOW = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)
NOWHERE = AddressAllowList()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.7",
        "172.16.3.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
    ],
)
def test_addresses_that_are_not_global_are_refused(address):
    assert not NOWHERE.allows("hooks.example.com", ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_global_addresses_are_allowed(address):
    assert NOWHERE.allows("hooks.example.com", ipaddress.ip_address(address))


def test_the_allow_list_names_hosts_and_networks():
    allow = AddressAllowList.parse(["10.20.0.0/16", "127.0.0.1", "Hooks.Internal.", "fd00::/8"])
    assert allow.allows("x", ipaddress.ip_address("10.20.9.9"))
    assert not allow.allows("x", ipaddress.ip_address("10.21.0.1"))
    assert allow.allows("x", ipaddress.ip_address("::ffff:127.0.0.1"))
    assert allow.allows("hooks.internal", ipaddress.ip_address("192.168.0.1"))
    assert allow.allows("x", ipaddress.ip_address("fd12::1"))
    with pytest.raises(ValueError, match="neither a host name nor a CIDR"):
        AddressAllowList.parse(["10.0.0.0/33x"])


def test_production_takes_https_only():
    production_rules = EndpointUrlRules(https_only=True, allow=NOWHERE)
    with pytest.raises(InvalidInput, match="https://"):
        production_rules.parse("http://hooks.example.com/x")
    parsed = production_rules.parse("https://Hooks.Example.com:8443/in?x=1#frag")
    assert (parsed.host, parsed.port, parsed.target) == ("hooks.example.com", 8443, "/in?x=1")
    assert parsed.host_header == "hooks.example.com:8443"
    six = EndpointUrlRules(https_only=False, allow=NOWHERE).parse("http://[2001:db8::1]/")
    assert (six.host, six.port, six.host_header) == ("2001:db8::1", 80, "[2001:db8::1]")


@pytest.mark.parametrize(
    "url", ["ftp://a.example/", "https://", "https://u:p@a.example/", "https://a.example:99999/"]
)
def test_malformed_urls_are_refused(url):
    with pytest.raises(InvalidInput) as refused:
        EndpointUrlRules(https_only=False, allow=NOWHERE).parse(url)
    assert refused.value.code == "invalid_webhook_endpoint_url"


async def test_resolution_connects_to_the_checked_address():
    rules = EndpointUrlRules(https_only=False, allow=AddressAllowList.parse(["127.0.0.0/8"]))
    resolved = await rules.resolve(rules.parse("http://127.0.0.1:8080/hook?a=b"))
    assert resolved.url == "http://127.0.0.1:8080/hook?a=b"
    with pytest.raises(AddressRefused, match="not a global address"):
        await EndpointUrlRules(https_only=False, allow=NOWHERE).resolve(
            rules.parse("http://localhost/hook")
        )
    with pytest.raises(AddressRefused, match="does not resolve"):
        await rules.resolve(rules.parse("http://no-such-host.invalid/"))


def test_webhook_endpoint_allow_is_a_comma_separated_setting(monkeypatch):
    settings = make(monkeypatch, WEBHOOK_ENDPOINT_ALLOW="127.0.0.1, hooks.internal,10.0.0.0/8")
    assert settings.webhook_endpoint_allow == ["127.0.0.1", "hooks.internal", "10.0.0.0/8"]
    rules = settings.endpoint_url_rules
    assert not rules.https_only
    assert rules.allows("x", ipaddress.ip_address("10.1.1.1"))
    assert make(monkeypatch, **production()).endpoint_url_rules.https_only
    with pytest.raises(ValidationError, match="neither a host name nor a CIDR"):
        make(monkeypatch, WEBHOOK_ENDPOINT_ALLOW="10.0.0.0/8,a b")


# --- schedule -----------------------------------------------------------------------------


def outcome(status: int | None, retry_after: float | None = None) -> Outcome:
    return Outcome(status, None if status and status < 300 else "x", retry_after, 0.01)


def test_failures_follow_the_schedule_then_fail():
    delays = []
    for attempts in range(1, len(RETRY_SCHEDULE_SECONDS) + 1):
        state = next_state(outcome(500), attempts, NOW, RETRY_SCHEDULE_SECONDS)
        assert "status" not in state  # still pending
        delays.append((state["next_attempt_at"] - NOW).total_seconds())
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000]
    last = next_state(outcome(None), len(RETRY_SCHEDULE_SECONDS) + 1, NOW, RETRY_SCHEDULE_SECONDS)
    assert last["status"] == "failed" and last["next_attempt_at"] is None


def test_success_and_gone_end_the_delivery():
    assert next_state(outcome(200), 1, NOW, RETRY_SCHEDULE_SECONDS)["status"] == "succeeded"
    assert next_state(outcome(299), 3, NOW, RETRY_SCHEDULE_SECONDS)["status"] == "succeeded"
    assert next_state(outcome(410), 1, NOW, RETRY_SCHEDULE_SECONDS)["status"] == "failed"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_never_undercut(status):
    later = next_state(outcome(status, 90.0), 1, NOW, RETRY_SCHEDULE_SECONDS)
    assert later["next_attempt_at"] == NOW + dt.timedelta(seconds=90)
    sooner = next_state(outcome(status, 1.0), 2, NOW, RETRY_SCHEDULE_SECONDS)
    assert sooner["next_attempt_at"] == NOW + dt.timedelta(seconds=300)  # the schedule's
    other = next_state(outcome(500, 90.0), 1, NOW, RETRY_SCHEDULE_SECONDS)
    assert other["next_attempt_at"] == NOW + dt.timedelta(seconds=5)  # only 429 and 503


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("120", NOW) == 120
    date = email.utils.format_datetime(NOW + dt.timedelta(minutes=2), usegmt=True)
    assert retry_after_seconds(date, NOW) == 120
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None


def test_filters():
    assert matches([], "", "room_started", None)
    assert matches(["room_started"], "", "room_started", "a")
    assert not matches(["room_finished"], "", "room_started", "a")
    assert matches([], "lobby-*", "room_started", "lobby-1")
    assert not matches([], "lobby-*", "room_started", "Lobby-1")  # case matters
    assert not matches([], "lobby-*", "egress_started", None)


# --- signatures ---------------------------------------------------------------------------


@given(payload=st.text(max_size=200), suffix=st.text("abcdef0123456789", min_size=1, max_size=32))
def test_each_secret_signs_what_the_library_verifies(payload, suffix):
    old, new = new_secret(), new_secret()
    msg_id = f"msg_{suffix}"
    now = dt.datetime.now(dt.UTC)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature_header(msg_id, now, payload, [new, old]),
    }
    for secret in (old, new):
        Webhook(secret).verify(payload.encode(), headers, json_parse=False)
    assert len(headers["webhook-signature"].split(" ")) == 2


def test_a_secret_is_whsec_and_base64_of_32_random_bytes():
    import base64

    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


def test_the_previous_secret_signs_only_until_it_expires():
    from types import SimpleNamespace

    from app.events.delivery_attempts import signing_secrets

    rotated = SimpleNamespace(
        secret="whsec_new",
        previous_secret="whsec_old",
        previous_secret_expires_at=NOW + dt.timedelta(hours=24),
    )
    assert signing_secrets(rotated, NOW) == ["whsec_new", "whsec_old"]
    assert signing_secrets(rotated, NOW + dt.timedelta(hours=24)) == ["whsec_new"]
    never_rotated = SimpleNamespace(
        secret="whsec_new", previous_secret=None, previous_secret_expires_at=None
    )
    assert signing_secrets(never_rotated, NOW) == ["whsec_new"]
