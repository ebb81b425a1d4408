"""pipeline.registry.hosts: the one loopback rule, host:port splitting, and dockerd's own rule;
and the callers that must follow the one rule (transport, token realm, CI, registry up)."""

from __future__ import annotations

import pytest

from pipeline.registry.hosts import (
    docker_allows_plain_http,
    is_loopback,
    split_host_port,
)

LOOPBACK = [
    "localhost", "localhost:5000", "LOCALHOST:5000", "localhost.", "localhost.:5000",
    "registry.localhost", "registry.localhost:5443", "a.b.LocalHost",
    "127.0.0.1", "127.0.0.1:5000", "127.1.2.3:80", "127.255.255.255",
    "::1", "[::1]", "[::1]:5000", "0:0:0:0:0:0:0:1", "[0:0:0:0:0:0:0:1]:5000",
]
NOT_LOOPBACK = [
    "", "example.com", "localhost.example.com", "notlocalhost", "localhost-1:5000", "mylocalhost",
    "128.0.0.1", "10.0.0.1:5000", "0.0.0.0", "0.0.0.0:5000", "::", "[::]:5000", "::2",
    "[fe80::1]:5000", "::ffff:127.0.0.1",     # IPv4-mapped: not by this rule
    "ghcr.io", "registry-1.docker.io", "127.0.0.1.nip.io", "1.2.3.4",
]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host):
    assert is_loopback(host) is True


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_hosts_that_are_not_loopback(host):
    assert is_loopback(host) is False


@pytest.mark.parametrize("text, expected", [
    ("localhost", ("localhost", None)),
    ("localhost:5000", ("localhost", 5000)),
    ("127.0.0.1:80", ("127.0.0.1", 80)),
    ("[::1]", ("::1", None)),
    ("[::1]:5000", ("::1", 5000)),
    ("::1", ("::1", None)),                       # a bare IPv6 address has no port
    ("fe80::1:5000", ("fe80::1:5000", None)),
    ("host:abc", ("host", None)),                 # not a number: no port
    (" ghcr.io ", ("ghcr.io", None)),
])
def test_split_host_port(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize("host, plain_http", [
    ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.3.2.1", True),
    ("registry.localhost:5000", True),
    ("[::1]:5000", False), ("::1", False),        # dockerd's default insecure range is IPv4 only
    ("registry.example.com:5000", False), ("10.0.0.1:5000", False),
])
def test_what_dockerd_speaks_plain_http_to_by_default(host, plain_http):
    assert docker_allows_plain_http(host) is plain_http


# -- the callers use the one rule --------------------------------------------------------------

def test_the_registry_transport_tries_plain_http_for_every_loopback_host():
    from pipeline.auth.credentials import Credentials
    from pipeline.registry.transport import Transport

    for host in ("localhost:5000", "registry.localhost:5000", "127.0.0.2:5000", "[::1]:5000"):
        transport = Transport(host, Credentials("anonymous"), verify=True, insecure=False, timeout=1)
        assert transport.allow_http, host
    assert not Transport("registry.example.com", Credentials("anonymous"), verify=True, insecure=False,
                         timeout=1).allow_http


class _Challenge:
    def __init__(self, realm):
        self.params = {"realm": realm}


@pytest.mark.parametrize("realm, refused", [
    ("http://auth.example.com/token", True),
    ("http://localhost:5001/token", False),
    ("http://user@127.0.0.1:5001/token", False),       # user info is not the host
    ("http://[::1]:5001/token", False),
    ("http://auth.localhost/token", False),
])
def test_credentials_go_to_a_plain_http_token_realm_only_on_loopback(realm, refused):
    from pipeline.auth.credentials import Credentials
    from pipeline.registry.auth import fetch_token
    from pipeline.registry.errors import RegistryAPIError
    from pipeline.registry.session import ConnectError

    class NoNetwork:
        def get(self, *a, **kw):
            raise ConnectError("no network in this test")

        post = get

    with pytest.raises(RegistryAPIError) as err:
        fetch_token(NoNetwork(), _Challenge(realm), ("repository:a:pull",),
                    Credentials("test", "u", "p"), verify=True, timeout=1,
                    allow_http=False, host="reg")
    assert ("refusing to send credentials" in str(err.value)) is refused


@pytest.mark.parametrize("registry, port", [
    ("localhost:5000", 5000), ("127.0.0.1:5001", 5001), ("[::1]:5002", 5002),
    ("registry.localhost:5003", 5003), ("localhost", 80), ("registry.example.com:5000", None),
])
def test_ci_stands_in_a_service_for_every_loopback_registry(registry, port):
    from types import SimpleNamespace

    from pipeline.ci.reachability import host_kind
    from pipeline.ci.registries import registry_context

    reg = SimpleNamespace(name="r", type="generic", registry=registry, repository="t/app",
                          username_env=None, password_env=None, ca_file=None)
    assert registry_context(reg).loopback_port == port
    assert (host_kind(registry) == "loopback") is (port is not None)


@pytest.mark.parametrize("bind, loopback", [("127.0.0.1", True), ("127.0.0.5", True),
                                            ("::1", True), ("0.0.0.0", False),
                                            ("192.168.1.10", False)])
def test_registry_up_binds_by_the_same_rule(bind, loopback):
    from pipeline.hosting.deploy import RegistryOptions, default_hosts

    assert RegistryOptions(bind=bind).open_to_the_network is not loopback
    if loopback:
        assert default_hosts(bind) == ["localhost"]
    elif bind != "0.0.0.0":                    # (every interface: this machine's name)
        assert default_hosts(bind) == [bind]
