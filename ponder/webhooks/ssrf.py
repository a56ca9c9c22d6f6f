"""The SSRF guard for webhook targets.

A tenant chooses the webhook URL, and the worker that sends it sits inside our network, so
a URL must not reach loopback, private, link-local, shared (CGNAT), multicast, reserved or
cloud-metadata addresses. Checking the name once and connecting later would let DNS
rebinding slip through (the name resolves to a public address for the check and to
127.0.0.1 for the connection), so the check lives in the connection itself:
:class:`GuardedBackend` resolves the host, refuses forbidden addresses, connects to the
exact address it checked, and checks the peer address of the connected socket again.

``PONDER_WEBHOOK_ALLOW_PRIVATE=true`` turns the guard off, for tests and local development.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from ponder.errors import ErrorCode, PonderError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Well-known instance metadata endpoints (AWS/GCP/Azure/OpenStack, AWS ECS, AWS IPv6,
# Alibaba Cloud, Oracle Cloud).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class ForbiddenAddress(PonderError):
    """The webhook target is (or resolves to) an address webhooks may not reach."""

    code = ErrorCode.FORBIDDEN_ADDRESS


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv4-mapped, 6to4 or NAT64 IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def forbidden_reason(address: str | IPAddress) -> str | None:
    """Why webhooks may not reach ``address``, or None if it is a public address."""
    ip = _unwrap(ipaddress.ip_address(address) if isinstance(address, str) else address)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a reserved address"
    return None


def _literal_host(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_target_url(url: str, *, allow_private: bool) -> None:
    """Refuse, before anything is sent, a URL that is not http(s) or whose host is a
    literal forbidden address (or ``localhost``). Names are checked again, by address,
    when the delivery connects. Raises :class:`ForbiddenAddress` with the reason."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise ForbiddenAddress(f"the scheme must be http or https, not {parts.scheme!r}")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise ForbiddenAddress("the URL has no host")
    if allow_private:
        return
    if host == "localhost" or host.endswith(".localhost"):
        raise ForbiddenAddress(f"{host!r} is a loopback name")
    ip = _literal_host(host)
    if ip is None:
        try:  # 2130706433, 0x7f.1, 127.1: forms the C resolver reads as IPv4 addresses
            ip = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return
    reason = forbidden_reason(ip)
    if reason is not None:
        raise ForbiddenAddress(f"{host} is {reason}")


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


class GuardedBackend(httpcore.NetworkBackend):
    """An httpcore network backend that only connects to allowed addresses."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private
        self._resolve = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if self._allow_private:
            return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            addresses = self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        refused: list[str] = []
        last_error: Exception | None = None
        for addr in addresses:
            reason = forbidden_reason(addr)
            if reason is not None:
                refused.append(f"{addr} ({reason})")
                continue
            try:
                stream = self._inner.connect_tcp(addr, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
                continue
            sock = stream.get_extra_info("socket")
            peer = sock.getpeername()[0] if sock is not None else addr
            reason = forbidden_reason(peer)
            if reason is not None:  # cannot happen unless something rewrote the route
                stream.close()
                refused.append(f"{peer} ({reason})")
                continue
            return stream
        if refused and last_error is None:
            literal = _literal_host(host)
            if literal is not None:
                raise ForbiddenAddress(f"{host} is {forbidden_reason(literal)}")
            raise ForbiddenAddress(
                f"{host} resolves only to addresses webhooks may not reach: " + ", ".join(refused)
            )
        if last_error is not None:
            raise last_error
        raise httpcore.ConnectError(f"{host} has no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise ForbiddenAddress("webhooks are not sent over Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on a :class:`GuardedBackend`; no proxies from the environment."""

    def __init__(self, *, allow_private: bool, resolver: Resolver = system_resolver) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow_private=allow_private, resolver=resolver),
        )


def guarded_client(
    *, allow_private: bool, timeout: float, resolver: Resolver = system_resolver
) -> httpx.Client:
    """An HTTP client for webhook deliveries: guarded connections, no redirects followed,
    no proxy settings taken from the environment."""
    return httpx.Client(
        transport=GuardedTransport(allow_private=allow_private, resolver=resolver),
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )
