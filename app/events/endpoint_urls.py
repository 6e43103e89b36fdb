"""Where the relay may send (contract: Webhook endpoints): an endpoint URL's form, and the
addresses its host resolves to.

- `https://` only in production (`http://` too in development); no user info; at most
  `MAX_URL_LENGTH` characters.
- Every address the host resolves to must be global (`ipaddress`' `is_global`: not
  loopback, private, link-local, shared, reserved ...), unless `WEBHOOK_ENDPOINT_ALLOW`
  names the host or a network holding the address (`AddressAllowList`).
- Checked when an endpoint is created or changed, and again at every attempt: the relay
  resolves the host, checks the addresses, then connects to the address it checked
  (`ResolvedUrl`), so a DNS answer that changes in between (rebinding) cannot send it
  elsewhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.core.errors import InvalidInput

#: Longest endpoint URL accepted (characters).
MAX_URL_LENGTH = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    """An endpoint's host does not resolve, or resolves to an address the rules refuse;
    the message says which (never the URL's path or query)."""


@dataclass(frozen=True)
class AddressAllowList:
    """`WEBHOOK_ENDPOINT_ALLOW`: host names (compared case-insensitively with the URL's
    host) and networks (CIDRs, or single addresses) an endpoint may resolve into although
    they are not global."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AddressAllowList:
        """Entries that parse as an address or CIDR are networks, the others host names;
        `ValueError` naming an entry that is neither."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                name = entry.strip().lower().rstrip(".")
                if not name or any(c in name for c in "/:@ ") or not name.isascii():
                    raise ValueError(f"{entry!r} is neither a host name nor a CIDR") from None
                hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        """Whether `address` (of `host`) may be sent to: global, or allowed by name or
        network."""
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        checked = mapped or address
        if checked.is_global:
            return True
        if host.lower().rstrip(".") in self.hosts:
            return True
        return any(checked in network for network in self.networks)


@dataclass(frozen=True)
class EndpointUrl:
    """An endpoint URL's parts: `scheme` (`http`/`https`), `host` (lower case, an IPv6
    address without brackets), `port`, `target` (path and query, at least `/`), and
    `host_header` (what the `Host` header says)."""

    scheme: str
    host: str
    port: int
    target: str
    host_header: str


@dataclass(frozen=True)
class ResolvedUrl:
    """Where one attempt connects: `url` (the checked address in place of the host) and
    the `endpoint` it stands for (`Host` header and TLS server name)."""

    url: str
    endpoint: EndpointUrl


@dataclass(frozen=True)
class EndpointUrlRules:
    """The rules of the module doc: `https_only` in production, and the allow list."""

    https_only: bool
    allow: AddressAllowList

    def parse(self, url: str) -> EndpointUrl:
        """`url`'s parts when its form is allowed; `InvalidInput` (422,
        `invalid_webhook_endpoint_url`) saying what is wrong otherwise."""
        schemes = ("https",) if self.https_only else ("http", "https")
        if len(url) > MAX_URL_LENGTH:
            raise _invalid(f"url is longer than {MAX_URL_LENGTH} characters")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise _invalid(f"url is not a valid URL ({exc})") from None
        if parts.scheme.lower() not in schemes:
            raise _invalid(f"url must be {' or '.join(s + '://' for s in schemes)}")
        if not parts.hostname:
            raise _invalid("url has no host")
        if parts.username is not None or parts.password is not None:
            raise _invalid("url must not carry user info (credentials)")
        scheme = parts.scheme.lower()
        default_port = 443 if scheme == "https" else 80
        host = parts.hostname.lower()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        shown_host = f"[{host}]" if ":" in host else host
        host_header = shown_host if port in (None, default_port) else f"{shown_host}:{port}"
        return EndpointUrl(scheme, host, port or default_port, target, host_header)

    async def resolve(self, endpoint: EndpointUrl, timeout_seconds: float = 5.0) -> ResolvedUrl:
        """Resolve `endpoint`'s host and check every address it has (see the module doc);
        the URL to connect to (the first address). Raises `AddressRefused`."""
        addresses = await _addresses(endpoint.host, endpoint.port, timeout_seconds)
        refused = [a for a in addresses if not self.allows(endpoint.host, a)]
        if refused:
            raise AddressRefused(
                f"host {endpoint.host} resolves to {refused[0]}, which is not a global "
                "address (WEBHOOK_ENDPOINT_ALLOW may name it)"
            )
        first = addresses[0]
        shown = f"[{first}]" if first.version == 6 else str(first)
        return ResolvedUrl(
            f"{endpoint.scheme}://{shown}:{endpoint.port}{endpoint.target}", endpoint
        )

    def allows(self, host: str, address: IPAddress) -> bool:
        """`AddressAllowList.allows`."""
        return self.allow.allows(host, address)

    async def check(self, url: str) -> EndpointUrl:
        """`parse`, then `resolve`: what an endpoint's creation or change requires; 422
        (`invalid_webhook_endpoint_url`, `webhook_endpoint_address_refused`)."""
        endpoint = self.parse(url)
        try:
            await self.resolve(endpoint)
        except AddressRefused as exc:
            raise InvalidInput(str(exc), code="webhook_endpoint_address_refused") from None
        return endpoint


async def _addresses(host: str, port: int, timeout_seconds: float) -> list[IPAddress]:
    """Every address `host` resolves to (an address literal: itself), in resolver order."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        async with asyncio.timeout(timeout_seconds):
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
    except (OSError, TimeoutError) as exc:
        raise AddressRefused(f"host {host} does not resolve ({exc.__class__.__name__})") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in found:
            found.append(address)
    if not found:
        raise AddressRefused(f"host {host} has no address")
    return found


def _invalid(detail: str) -> InvalidInput:
    return InvalidInput(detail, code="invalid_webhook_endpoint_url")
