"""Standard Webhooks signatures (checked by the independent `standardwebhooks` package),
the address rules of the SSRF guard, and Retry-After parsing."""

from __future__ import annotations

import base64
import ipaddress
import time

import pytest
import standardwebhooks

from ponder.retry_after import parse_retry_after
from ponder.webhooks import signing
from ponder.webhooks.ssrf import ForbiddenAddress, check_target_url, forbidden_reason


def test_a_generated_secret_is_whsec_and_32_random_bytes() -> None:
    a, b = signing.generate_secret(), signing.generate_secret()
    assert a.startswith("whsec_") and a != b
    assert len(base64.b64decode(a.removeprefix("whsec_"))) == 32


def test_signatures_verify_with_the_reference_library() -> None:
    secret = signing.generate_secret()
    body = b'{"type":"job.completed","data":{"id":"j1","answer":"(4+4)*3"}}'
    ts = int(time.time())
    headers = signing.headers([secret], "msg_1", ts, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert standardwebhooks.Webhook(secret).verify(body, headers)["data"]["id"] == "j1"


def test_a_tampered_body_or_id_fails_verification() -> None:
    secret = signing.generate_secret()
    body = b'{"a":1}'
    ts = int(time.time())
    headers = signing.headers([secret], "msg_1", ts, body)
    wh = standardwebhooks.Webhook(secret)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        wh.verify(b'{"a":2}', headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        wh.verify(body, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(signing.generate_secret()).verify(body, headers)


def test_several_secrets_give_several_signatures_each_verifying() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    body = b"{}"
    headers = signing.headers([new, old], "msg_9", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(body, headers)


def test_signing_refuses_a_secret_without_the_prefix_or_no_secret() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        signing.sign("abc", "m", 1, b"")
    with pytest.raises(ValueError, match="no secret"):
        signing.signature_header([], "m", 1, b"")


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::5", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "private"),  # documentation range (IANA special-purpose registry)
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    why = forbidden_reason(address)
    assert why is not None and reason in why


def _sweep() -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Addresses spread over the whole IPv4 space and IPv6's global unicast block,
    computed rather than named (no test names a real host's address; nothing is sent)."""
    v4 = [
        ipaddress.IPv4Address((first << 24) | tail)
        for first in range(256)
        for tail in (1, 0x400001, 0xA80001)
    ]
    v6 = [ipaddress.IPv6Address((0x2000 << 112) | (h << 96) | 1) for h in range(0, 0x10000, 0x101)]
    return [*v4, *v6]


def test_exactly_the_global_unicast_addresses_are_allowed() -> None:
    allowed = [a for a in _sweep() if forbidden_reason(str(a)) is None]
    assert allowed, "some addresses must be allowed"
    for address in _sweep():
        public = address.is_global and not address.is_multicast
        assert (forbidden_reason(str(address)) is None) == public, address


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com", "http:///nohost"],
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(ForbiddenAddress):
        check_target_url(url, allow_private=True)


def test_names_are_left_for_connect_time_except_localhost() -> None:
    check_target_url("https://hooks.example.com/x", allow_private=False)
    for url in ("http://localhost/x", "http://LOCALHOST./x", "http://a.b.localhost/x"):
        with pytest.raises(ForbiddenAddress, match="loopback"):
            check_target_url(url, allow_private=False)
    check_target_url("http://localhost/x", allow_private=True)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
def test_retry_after_ignores_non_finite_numbers(value: str) -> None:
    assert parse_retry_after({"Retry-After": value}) is None
