"""`MEDIA_URL_ALLOW`: the URLs LiveKit's workers and servers may fetch or send to.

MEDIA_URL_ALLOW is a comma-separated list of patterns. A pattern is parsed once, when the
settings are read (a pattern that does not follow this grammar is a settings error naming
it), and URLs are compared with it part by part, as `urllib.parse.urlsplit` reads them,
never as strings:

    pattern = scheme "://" host [":" port] [path]

- `scheme`: compared exactly (scheme names are case-insensitive, RFC 3986 3.1).
- `host`: a DNS name in ASCII (an IDN in its `xn--` form), compared exactly and
  case-insensitively (`app.example.com`); or `*.` and a DNS name, for any name one or more
  labels below it (`*.example.com` admits `a.example.com` and `a.b.example.com`, not
  `example.com` itself: list it as well); or an IP address (`10.0.0.5`, `[fd00::5]`), for
  that address only; or `*` alone, for any DNS name or public IP address.
- `port`: a number, or `*` for any port. Omitted, it is the scheme's default port
  (`DEFAULT_PORTS`: http 80, https 443, ws 80, wss 443, rtmp 1935, rtmps 443, socks5
  1080), and a URL matches when its own port (given, or its scheme's default) is that one:
  `https://a.example.com` admits `https://a.example.com:443/`. A scheme with no default
  port (`srt` ...) must give its port, or `*`.
- `path`: a path prefix, compared segment by segment and case-sensitively: `/rec` admits
  `/rec` and `/rec/x`, not `/recx`; `/rec/` admits only what is below `/rec/`. A `*`
  after the last `/` is dropped (`/rec/*` is `/rec/`; `https://app.example.com/*` admits
  every path of that host). Omitted, or `/`: any path. When a pattern has a path prefix,
  a URL whose path has a `.` or `..` segment (percent-encoded or not) does not match it.

No other wildcard, no userinfo, no query and no fragment in a pattern.

With patterns set, a URL is admitted when one of them matches it, and never when it:

- has userinfo (`user@host`, `user:password@host`);
- holds a backslash, a space or a control character (a browser reads `\\` as `/`, and
  drops tabs and newlines, so the host it connects to would not be the one checked);
- has a host that is neither an IP address nor a DNS name of letters, digits, `-` and `_`
  whose last label is not a number (`http://2852039166/`, `http://0x7f.1/` are IPv4
  addresses to a browser: WHATWG URL "ends in a number");
- has an IP address for host that is loopback, private, link-local, unspecified,
  multicast, reserved or otherwise not globally routable, or an IPv4-mapped IPv6 address
  (`[::ffff:10.0.0.1]`), unless a pattern names that very address.

With no patterns (MEDIA_URL_ALLOW unset or empty) every URL is admitted: the contract's
"empty: any". The schemes a field takes, and file paths, are checked either way
(`app.server_apis.media`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

#: The port a URL of these schemes reaches when it names none (IANA service names).
DEFAULT_PORTS: dict[str, int] = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "rtmp": 1935,
    "rtmps": 443,
    "socks5": 1080,
}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?")
#: The last label of a host that a WHATWG URL parser reads as an IPv4 number.
_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")
#: Characters no checked URL may hold (see the module doc).
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


def dns_name(host: str) -> bool:
    """True when `host` (lowercase, one trailing dot allowed) is a DNS name this module
    compares: labels of letters, digits, `-` and `_`, the last one not a number."""
    labels = host.removesuffix(".").split(".")
    return (
        all(_LABEL.fullmatch(label) for label in labels)
        and not _NUMBER.fullmatch(labels[-1])
        and len(host) <= 253
    )


def ip_literal(host: str) -> IPAddress | None:
    """The IP address `host` (as `urlsplit().hostname` gives it: IPv6 without brackets)
    spells, else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def internal_address(address: IPAddress) -> bool:
    """True for an address a pattern must name to be admitted: loopback, private,
    link-local, unspecified, multicast, reserved or not globally routable, and every
    IPv4-mapped IPv6 address (`::ffff:10.0.0.1`: a way to spell an IPv4 address)."""
    if getattr(address, "ipv4_mapped", None) is not None:
        return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or not address.is_global
    )


def traversing(path: str) -> bool:
    """True when `path` has a `.` or `..` segment once percent-decoded (`\\` read as `/`)."""
    segments = unquote(path).replace("\\", "/").split("/")
    return any(segment in (".", "..") for segment in segments)


@dataclass(frozen=True)
class UrlPattern:
    """One MEDIA_URL_ALLOW pattern, parsed (see the module doc for the grammar).

    `host` is a lowercase DNS name, `*.` and a DNS name, `*`, or an IP address's text;
    `address` is that address when the host is one; `port` is None for any port; `path`
    is the prefix without its trailing `/*` ("" for any path).
    """

    text: str
    scheme: str
    host: str
    address: IPAddress | None
    port: int | None
    path: str

    @classmethod
    def parse(cls, text: str) -> UrlPattern:
        """Parse `text`; raises ValueError saying what is wrong, naming the pattern (never
        repeating a userinfo part, which may hold a password)."""
        try:
            return cls._parse(text)
        except ValueError as exc:
            shown = text if "@" not in text else "(a pattern with userinfo)"
            raise ValueError(f"MEDIA_URL_ALLOW pattern {shown!r}: {exc}") from None

    @classmethod
    def _parse(cls, text: str) -> UrlPattern:
        if _UNSAFE.search(text):
            raise ValueError("a space, a control character or a backslash")
        scheme, sep, rest = text.partition("://")
        scheme = scheme.lower()
        if not sep or not _SCHEME.fullmatch(scheme):
            raise ValueError("give scheme://host[:port][/path]")
        netloc, slash, path = rest.partition("/")
        path = slash + path
        if "@" in netloc:
            raise ValueError("userinfo (user@) is not allowed")
        if "?" in rest or "#" in rest:
            raise ValueError("a query or fragment is not allowed")
        port: int | None = None
        if netloc.endswith(":*"):
            netloc = netloc[:-2]
        else:
            try:
                port = urlsplit(f"{scheme}://{netloc}").port
            except ValueError:
                raise ValueError("not a valid host[:port] (a port is 1 to 65535, or `*`)") from None
            if port is not None:
                if port == 0:
                    raise ValueError("the port is not a number from 1 to 65535 or `*`")
                netloc = netloc.rpartition(":")[0]
            elif scheme in DEFAULT_PORTS:
                port = DEFAULT_PORTS[scheme]
            else:
                raise ValueError(f"{scheme}:// has no default port: give one, or `:*`")
        host, address = _pattern_host(netloc)
        if path.endswith("/*"):
            path = path[:-1]
        if "*" in path:
            raise ValueError("`*` is allowed in a path only as a trailing `/*`")
        if traversing(path):
            raise ValueError("the path has a `.` or `..` segment")
        return cls(text, scheme, host, address, port, "" if path == "/" else path)

    def matches(self, url: SplitResult, host: str, address: IPAddress | None) -> bool:
        """True when `url` (split; `host` its lowercase hostname without a trailing dot,
        `address` its IP address when it is one) has this pattern's scheme, host, port and
        path. The refusals that hold whatever the patterns are `UrlAllowList.admits`'s."""
        if url.scheme != self.scheme or not self._host_matches(host, address):
            return False
        port = url.port if url.port is not None else DEFAULT_PORTS.get(url.scheme)
        if self.port is not None and self.port != port:
            return False
        return self._path_matches(url.path)

    def _host_matches(self, host: str, address: IPAddress | None) -> bool:
        if self.host == "*":
            return True
        if self.address is not None or address is not None:
            return self.address == address
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return self.host == host

    def _path_matches(self, path: str) -> bool:
        if not self.path:
            return True
        if traversing(path):
            return False
        if self.path.endswith("/"):
            return path.startswith(self.path)
        return path == self.path or path.startswith(self.path + "/")


def _pattern_host(netloc: str) -> tuple[str, IPAddress | None]:
    """A pattern's host (lowercase) and its IP address when it is one."""
    if netloc.startswith("[") and netloc.endswith("]"):
        address = ip_literal(netloc[1:-1])
        if not isinstance(address, ipaddress.IPv6Address) or "%" in netloc:
            raise ValueError("[...] holds no IPv6 address")
        return str(address), address
    host = netloc.lower()
    if host == "*":
        return host, None
    address = ip_literal(host)
    if address is not None:
        return str(address), address
    name = host[2:] if host.startswith("*.") else host
    if not name or not dns_name(name) or name.endswith("."):
        raise ValueError("the host is not a DNS name, `*.` and a DNS name, `*` or an IP address")
    return host, None


@dataclass(frozen=True)
class UrlAllowList:
    """MEDIA_URL_ALLOW, parsed: `admits(url)` says whether a LiveKit worker or server may
    be sent to `url`. No patterns: every URL is admitted (see the module doc)."""

    patterns: tuple[UrlPattern, ...] = ()

    @classmethod
    def parse(cls, texts: list[str]) -> UrlAllowList:
        """The allow-list of `texts` (one pattern each); ValueError naming the first
        pattern that is not valid."""
        return cls(tuple(UrlPattern.parse(text) for text in texts))

    def admits(self, url: str) -> bool:
        """True when there are no patterns, or when `url` has no userinfo, no unsafe
        character, a DNS name or a public IP address for host (an internal one only when a
        pattern names it) and matches a pattern. A URL `urlsplit` cannot read is refused."""
        if not self.patterns:
            return True
        if _UNSAFE.search(url):
            return False
        try:
            split = urlsplit(url)
            split.port  # noqa: B018 - reading it checks it (ValueError)
        except ValueError:
            return False
        hostname = split.hostname
        if split.username is not None or "@" in split.netloc or not hostname:
            return False
        address = ip_literal(hostname)
        if address is None and (not dns_name(hostname) or "[" in split.netloc):
            return False
        host = hostname.removesuffix(".")
        matching = [p for p in self.patterns if p.matches(split, host, address)]
        if address is not None and internal_address(address):
            return any(p.address == address for p in matching)
        return bool(matching)


#: No patterns: every URL is admitted (MEDIA_URL_ALLOW unset).
ANY_URL = UrlAllowList()
