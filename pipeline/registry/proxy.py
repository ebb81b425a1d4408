"""Which proxy the environment names for a URL: the part of proxy support urllib3 leaves to us.

The variables are read as requests and curl (and the standard library's
`getproxies_environment`) read them: https_proxy / http_proxy, then all_proxy, the lower-case
name winning when it is set, HTTP_PROXY ignored in CGI ("httpoxy"). They are looked up by name
on every request: iterating os.environ, as `getproxies_environment` does, costs more than a
request to a local registry. NO_PROXY is matched here, because the standard library knows
neither CIDR ranges nor `*.` prefixes: a comma list of `*`, host names
(the host and its subdomains; a leading `.` or `*.` is ignored), `host:port`, IP
addresses (IPv6 bare or in brackets) and CIDR ranges. Loopback hosts get no implicit
rule (as with requests): list them in NO_PROXY to bypass a proxy for a local registry.
"""

from __future__ import annotations

import ipaddress
import os


def proxy_for(scheme: str, host: str, port: int) -> str | None:
    """The proxy URL for a request to scheme://host:port, or None (none set, or NO_PROXY)."""
    cgi = scheme == "http" and "REQUEST_METHOD" in os.environ
    url = _env(f"{scheme}_proxy", upper=not cgi) or _env("all_proxy")
    if not url:
        return None
    no_proxy = _env("no_proxy")
    if no_proxy and bypass_proxy(host, port, no_proxy):
        return None
    return url if "://" in url else f"http://{url}"


def _env(name: str, *, upper: bool = True) -> str | None:
    value = os.environ.get(name)
    if value is None and upper:
        value = os.environ.get(name.upper())
    return value.strip() or None if value else None


def bypass_proxy(host: str, port: int, no_proxy: str) -> bool:
    """Does NO_PROXY (a comma list) exclude host:port?"""
    host = host.lower().strip("[]").rstrip(".")
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return True
        if "/" in entry:
            if _in_network(host, entry):
                return True
            continue
        name, entry_port = _split_port(entry)
        if name is None or (entry_port is not None and entry_port != port):
            continue
        name = name.removeprefix("*.").strip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


def _in_network(host: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


def _split_port(entry: str) -> tuple[str | None, int | None]:
    """(name, port or None) of a NO_PROXY entry; (None, None) for an entry to skip."""
    if entry.startswith("["):                   # [v6]:port or [v6]
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest[:1] == ":" and rest[1:].isdigit() else None
    if entry.count(":") == 1:                   # host:port (a bare IPv6 address has more)
        name, _, port = entry.partition(":")
        return (name, int(port)) if port.isdigit() else (None, None)
    return entry, None
