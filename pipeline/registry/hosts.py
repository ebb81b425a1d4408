"""Which hosts are this machine: the project's one loopback rule, and the port of a host.

    is_loopback("localhost:5000") -> True      split_host_port("[::1]:5000") -> ("::1", 5000)

The rule (`is_loopback`): `localhost`, any `*.localhost` name (RFC 6761 reserves them for
loopback), an IPv4 address in 127.0.0.0/8, or the IPv6 address ::1; case-insensitive, a
trailing dot ignored, with or without a port, IPv6 with or without brackets. Nothing is
resolved: a name counts by its spelling only. Every "is this registry / bind address /
token realm on this machine?" question in the project uses it: plain HTTP tried first and
allowed (registry/transport.py), credentials to a plain-HTTP token realm (registry/auth.py),
`release registry up`'s bind checks (hosting/deploy.py), the CI's stand-in services
(ci/registries.py, ci/reachability.py).

A deliberately different rule, named so the difference shows: `docker_allows_plain_http`
is what dockerd itself pushes to over plain HTTP without an `insecure-registries` entry (its
default insecure range is 127.0.0.0/8 only, so not ::1); it is for messages about what the
Docker Engine will do (e.g. `release registry up`'s insecure-registries hint), not for
release's own HTTP.
"""

from __future__ import annotations

import ipaddress

_IPV4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_IPV6_LOOPBACK = ipaddress.ip_address("::1")


def split_host_port(host_port: str) -> tuple[str, int | None]:
    """(host, port or None) of `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6
    address; the host without brackets. A port that is not a number counts as none."""
    text = host_port.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:                                   # a name, an IPv4 address, or a bare IPv6 address
        host, port = text, ""
    return host, int(port) if port.isdigit() else None


def is_loopback(host_or_host_port: str) -> bool:
    """Is this host (with or without a port) this machine by the rule in the module docstring?"""
    host = split_host_port(host_or_host_port)[0].lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 4:
        return address in _IPV4_LOOPBACK
    return address == _IPV6_LOOPBACK


def docker_allows_plain_http(host_or_host_port: str) -> bool:
    """Does dockerd speak plain HTTP to this registry without an `insecure-registries` entry?

    dockerd's default insecure range is 127.0.0.0/8, matched after it resolves the name:
    `localhost` (and *.localhost) resolve into it, ::1 is outside it. So: `is_loopback`
    minus IPv6."""
    host = split_host_port(host_or_host_port)[0]
    return is_loopback(host) and ":" not in host
