"""MEDIA_URL_ALLOW's matcher (`app.server_apis.urlpatterns`): URLs are compared part by part as
`urllib.parse.urlsplit` reads them, never as strings. A property test checks the matcher
against a verdict computed from `urlsplit`'s parts by the documented rules, over URLs and
patterns built from parts; example tests pin the known attacks on glob patterns."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.server_apis.urlpatterns import ANY_URL, UrlAllowList
from tests.conftest import make_settings

# --- the attacks on `https://*.example.com/*` ---------------------------------------------

WILDCARD = UrlAllowList.parse(["https://*.example.com/*"])


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/.example.com/",
        "https://a.example.com@169.254.169.254/",
        "https://169.254.169.254#.example.com",
        "https://10.0.0.1/?x=.example.com/",
        "https://169.254.169.254\\.example.com/",  # a browser reads `\` as `/`
        "https://a.example.com\\@169.254.169.254/",
        "https://user:pw@a.example.com/",
        "https://a.example.com:8443/",  # not the default port
        "http://a.example.com/",
        "https://example.com/",  # the apex is not a subdomain
        "https://aexample.com/",
        "https://a.example.com.evil.test/",
        "https://a.exa\tmple.com/",
        "https://[::ffff:169.254.169.254]/",
        "https://2852039166/",  # 169.254.169.254 to a browser
        "https://0x7f.1/",
        "not a url",
    ],
)
def test_glob_attacks_are_refused(url):
    assert not WILDCARD.admits(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example.com/x",
        "https://a.b.example.com/",
        "https://A.Example.COM/x?y=1#z",
        "https://a.example.com:443/",
        "https://a.example.com./x",
        "https://a.example.com",
    ],
)
def test_subdomains_are_admitted(url):
    assert WILDCARD.admits(url)


# --- the grammar ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "admitted", "refused"),
    [
        ("https://h.example.com/rec", ["https://h.example.com/rec", "https://h.example.com/rec/x"],
         ["https://h.example.com/recx", "https://h.example.com/", "https://h.example.com/rec/../x",
          "https://h.example.com/rec/%2E%2E/x", "https://h.example.com/REC"]),
        ("https://h.example.com/rec/", ["https://h.example.com/rec/x"],
         ["https://h.example.com/rec", "https://h.example.com/recx"]),
        ("https://h.example.com/rec/*", ["https://h.example.com/rec/x"],
         ["https://h.example.com/rec"]),
        ("https://h.example.com", ["https://h.example.com:443/any", "HTTPS://H.EXAMPLE.COM/"],
         ["https://h.example.com:444/", "https://x.h.example.com/", "wss://h.example.com/"]),
        ("rtmp://live.example.com", ["rtmp://live.example.com/app/key",
                                     "rtmp://live.example.com:1935/app"],
         ["rtmp://live.example.com:1936/app", "rtmps://live.example.com/app"]),
        ("srt://cams.example.com:9000", ["srt://cams.example.com:9000?streamid=a"],
         ["srt://cams.example.com:9001", "srt://cams.example.com"]),
        ("srt://cams.example.com:*", ["srt://cams.example.com:1", "srt://cams.example.com"], []),
        ("https://10.0.0.5:8443", ["https://10.0.0.5:8443/x"],
         ["https://10.0.0.6:8443/", "https://10.0.0.5/", "https://[::ffff:10.0.0.5]:8443/",
          "https://012.0.0.5:8443/"]),
        ("wss://[fd00::5]", ["wss://[fd00::5]/x", "wss://[FD00:0::5]/"], ["wss://[fd00::6]/"]),
        ("rtmps://*", ["rtmps://a.example.net/x", "rtmps://8.8.8.8/x"],
         ["rtmps://10.0.0.1/", "rtmps://127.0.0.1/", "rtmps://[::1]/", "rtmps://0.0.0.0/",
          "rtmps://224.0.0.1/", "rtmps://100.64.0.1/", "rtmps://[fe80::1]/",
          "rtmps://localhost.:443@x/"]),
    ],
)  # fmt: skip
def test_grammar_examples(pattern, admitted, refused):
    allow = UrlAllowList.parse([pattern])
    for url in admitted:
        assert allow.admits(url), url
    for url in refused:
        assert not allow.admits(url), url


def test_an_internal_address_needs_a_pattern_naming_it():
    allow = UrlAllowList.parse(["rtmp://*", "rtmp://10.0.0.5"])
    assert allow.admits("rtmp://10.0.0.5/live")
    assert not allow.admits("rtmp://10.0.0.6/live")
    assert allow.admits("rtmp://8.8.8.8/live")


def test_no_patterns_admit_any_url():
    for url in ("http://169.254.169.254/", "https://u:p@10.0.0.1/", "anything"):
        assert ANY_URL.admits(url)
        assert UrlAllowList.parse([]).admits(url)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("app.example.com", "scheme://host"),
        ("https://a*.example.com", "the host"),
        ("https://*.*.example.com", "the host"),
        ("https://*example.com", "the host"),
        ("https://", "the host"),
        ("srt://cams.example.com", "no default port"),
        ("https://x.example.com:99999", "port"),
        ("https://x.example.com:0", "port"),
        ("https://x.example.com/a*", "trailing `/*`"),
        ("https://x.example.com/?q=1", "query"),
        ("https://x.example.com/#f", "query or fragment"),
        ("https://x.example.com/a/../b", "`..`"),
        ("https://[not-v6]", "host"),
        ("https://x.example.com\\y", "backslash"),
    ],
)
def test_invalid_patterns_are_refused_naming_them(pattern, says):
    with pytest.raises(ValueError, match=re.escape(says)) as raised:
        UrlAllowList.parse(["https://ok.example.com", pattern])
    assert repr(pattern) in str(raised.value)


def test_a_pattern_with_userinfo_is_refused_without_repeating_it():
    with pytest.raises(ValueError, match="userinfo") as raised:
        UrlAllowList.parse(["https://user:hunter2@x.example.com"])
    assert "hunter2" not in str(raised.value)


def test_settings_parse_the_patterns_once_and_refuse_an_invalid_one(tmp_path):
    loaded = make_settings("http://127.0.0.1:9", tmp_path, media_url_allow="https://*.a.test/*")
    assert loaded.media_url_allow == ["https://*.a.test/*"]
    assert loaded.media_url_allow_list.admits("https://x.a.test/y")
    assert not loaded.media_url_allow_list.admits("https://x.b.test/y")
    with pytest.raises(ValidationError, match=re.escape("'https://a.test/x*'")):
        make_settings("http://127.0.0.1:9", tmp_path, media_url_allow="https://a.test/x*")


# --- the property: the matcher agrees with urlsplit's parts -------------------------------

DEFAULTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "rtmp": 1935, "rtmps": 443}
NAMES = ["example.com", "app.example.com", "a.example.com", "b.a.example.com"]
IPS = ["10.0.0.5", "8.8.8.8", "169.254.169.254", "127.0.0.1", "::1", "fd00::5", "2001:db8::1",
       "2606:4700::1111", "0.0.0.0", "224.0.0.1", "100.64.0.1", "1.1.1.1"]  # fmt: skip
SCHEMES = ["http", "https", "rtmp", "srt", "wss"]
PORTS = [80, 443, 1935, 8443, 9000]


@dataclass(frozen=True)
class Pattern:
    """A pattern's parts as generated: `host_kind` is name, wildcard, any or ip."""

    scheme: str
    host_kind: str
    host: str
    port: int | str | None
    path: str | None

    @property
    def text(self) -> str:
        host = {"name": self.host, "wildcard": f"*.{self.host}", "any": "*"}.get(self.host_kind)
        if host is None:
            host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{host}{port}{self.path or ''}"


@st.composite
def patterns(draw: st.DrawFn) -> Pattern:
    scheme = draw(st.sampled_from(SCHEMES))
    kind = draw(st.sampled_from(["name", "wildcard", "any", "ip"]))
    host = draw(st.sampled_from(IPS if kind == "ip" else NAMES))
    port = draw(st.sampled_from([None, "*", *PORTS]))
    if port is None and scheme not in DEFAULTS:
        port = "*"
    path = draw(st.sampled_from([None, "/", "/*", "/rec", "/rec/", "/rec/*", "/a/rec"]))
    return Pattern(scheme, kind, host, port, path)


URL_HOSTS = [*NAMES, "evil.com", "example.com.evil.com", "aexample.com", "APP.Example.COM",
             "app.example.com.", "2852039166", "0x7f.1", "1.2.3", "a_b.example.com",
             "-x.example.com", "a..example.com", "*.example.com",
             *[f"[{ip}]" if ":" in ip else ip for ip in IPS], "[::ffff:10.0.0.5]",
             "[::ffff:8.8.8.8]", "[fe80::1%25eth0]", "[v1.x]"]  # fmt: skip
SEGMENTS = ["rec", "recx", "REC", "a", "x", ".", "..", "%2e%2e", "%2E", ".example.com", "a@b",
            "", "rec%2f.."]  # fmt: skip


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from([*SCHEMES, "ftp", "HTTPS", "Rtmp"]))
    userinfo = draw(st.sampled_from(["", "user@", "user:pw@", "a.example.com@", "@"]))
    host = draw(st.sampled_from(URL_HOSTS))
    port = draw(st.sampled_from(["", *[f":{p}" for p in PORTS], ":0", ":", ":x", ":70000"]))
    segments = draw(st.lists(st.sampled_from(SEGMENTS), max_size=3))
    path = "".join(f"/{segment}" for segment in segments)
    query = draw(st.sampled_from(["", "?x=.example.com/", "?@169.254.169.254", "?a=1"]))
    fragment = draw(st.sampled_from(["", "#.example.com", "#@evil.com/"]))
    tricks = draw(st.sampled_from(["", "", "", "\\", " ", "\t", "\\@10.0.0.5"]))
    return f"{scheme}://{userinfo}{host}{port}{tricks}{path}{query}{fragment}"


@st.composite
def near(draw: st.DrawFn, rule: Pattern) -> str:
    """A URL built to match `rule`, then (often) spoilt in one part."""
    host = {"name": rule.host, "wildcard": f"x.{rule.host}"}.get(rule.host_kind)
    if host is None:
        host = draw(st.sampled_from(URL_HOSTS)) if rule.host_kind == "any" else rule.host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    if rule.port is None:
        port = draw(st.sampled_from(["", f":{DEFAULTS[rule.scheme]}"]))
    else:
        port = f":{draw(st.sampled_from(PORTS))}" if rule.port == "*" else f":{rule.port}"
    prefix = (rule.path or "/").removesuffix("*").removesuffix("/")
    tail = draw(st.lists(st.sampled_from(SEGMENTS), max_size=2))
    path = prefix + "".join(f"/{segment}" for segment in tail)
    spoil = draw(st.sampled_from(["", "", "", "user@", "\\", "..", "/x", ":1", "evil.", "UP"]))
    scheme = rule.scheme.upper() if spoil == "UP" else rule.scheme
    userinfo = spoil if spoil == "user@" else ""
    host = spoil + host if spoil == "evil." else host
    port = spoil if spoil == ":1" else port
    path = {"..": prefix + "/../x", "/x": "/x" + path, "\\": "\\" + path}.get(spoil, path)
    return f"{scheme}://{userinfo}{host}{port}{path}"


_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")


def oracle(url: str, rules: list[Pattern]) -> bool:
    """The verdict of the module doc's rules, from `urlsplit`'s scheme, hostname, port,
    path and username, and the patterns' generated parts."""
    if not rules:
        return True
    if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        return False
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:
        return False
    if split.username is not None or not split.hostname:
        return False
    hostname = split.hostname
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        address = None
        labels = hostname.removesuffix(".").split(".")
        if "[" in split.netloc or not all(_LABEL.fullmatch(label) for label in labels):
            return False
        if re.fullmatch(r"[0-9]+|0x[0-9a-f]*", labels[-1]):
            return False
    host = hostname.removesuffix(".")
    effective_port = port if port is not None else DEFAULTS.get(split.scheme)
    dot_segment = any(s in (".", "..") for s in unquote(split.path).split("/"))

    def matches(rule: Pattern) -> bool:
        if split.scheme != rule.scheme:
            return False
        if rule.host_kind == "ip":
            if address != ipaddress.ip_address(rule.host):
                return False
        elif rule.host_kind == "name":
            if address is not None or host != rule.host:
                return False
        elif rule.host_kind == "wildcard" and (
            address is not None or not host.endswith(f".{rule.host}")
        ):
            return False
        wanted = DEFAULTS[rule.scheme] if rule.port is None else rule.port
        if wanted != "*" and wanted != effective_port:
            return False
        prefix = (rule.path or "").removesuffix("*")
        if prefix in ("", "/"):
            return True
        if dot_segment:
            return False
        if prefix.endswith("/"):
            return split.path.startswith(prefix)
        return split.path == prefix or split.path.startswith(prefix + "/")

    matching = [rule for rule in rules if matches(rule)]
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None)
        internal = mapped is not None or not address.is_global or any(
            (address.is_private, address.is_loopback, address.is_link_local,
             address.is_multicast, address.is_unspecified, address.is_reserved)
        )  # fmt: skip
        if internal:
            return any(r.host_kind == "ip" and ipaddress.ip_address(r.host) == address
                       for r in matching)  # fmt: skip
    return bool(matching)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(rules=st.lists(patterns(), max_size=3), data=st.data())
def test_the_matcher_agrees_with_urlsplit(rules, data):
    built = [near(rule) for rule in rules]
    url = data.draw(st.one_of(urls(), *built) if built else urls())
    allow = UrlAllowList.parse([rule.text for rule in rules])
    assert allow.admits(url) == oracle(url, rules), (url, [rule.text for rule in rules])
