"""WWW-Authenticate parsing, scope arithmetic and the Bearer token cache."""

from __future__ import annotations

import pytest

from pipeline.registry.auth import (
    TokenCache,
    covers,
    merge_scopes,
    parse_challenge,
    parse_challenges,
    repository_scope,
)
from pipeline.ui import redact


def test_bearer_challenge_with_quoted_commas():
    ch = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                         'scope="repository:samalba/my-app:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                         "scope": "repository:samalba/my-app:pull,push"}
    assert ch.scopes == ("repository:samalba/my-app:pull,push",)


def test_insufficient_scope_and_several_scopes():
    ch = parse_challenge('Bearer realm="https://r/token", service="r", error="insufficient_scope", '
                         'scope="repository:a:pull repository:b:pull,push"')
    assert ch.error == "insufficient_scope"
    assert ch.scopes == ("repository:a:pull", "repository:b:pull,push")


@pytest.mark.parametrize("header, scheme, realm", [
    ('Basic realm="Registry Realm"', "basic", "Registry Realm"),
    ('BASIC realm="nexus"', "basic", "nexus"),                  # Nexus: upper-case scheme
    ('basic realm=unquoted', "basic", "unquoted"),
    ('Bearer realm="a\\"b",service=x', "bearer", 'a"b'),       # escaped quote
    ('  Bearer   realm = "spaced" , service="s"', "bearer", "spaced"),
    ("Basic", "basic", None),
])
def test_schemes_and_params(header, scheme, realm):
    ch = parse_challenge(header)
    assert ch.scheme == scheme and ch.params.get("realm") == realm


def test_several_challenges_prefer_bearer():
    header = 'Basic realm="x", Bearer realm="https://t/token",service="s"'
    assert [c.scheme for c in parse_challenges(header)] == ["basic", "bearer"]
    assert parse_challenge(header).params == {"realm": "https://t/token", "service": "s"}


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_challenge(header):
    assert parse_challenge(header) is None


def test_scopes():
    assert repository_scope("a/b") == "repository:a/b:pull"
    assert repository_scope("a/b", "pull", "push") == "repository:a/b:pull,push"
    merged = merge_scopes(("repository:dst:pull,push",), ["repository:src:pull"], "repository:dst:pull")
    assert merged == ("repository:dst:pull,push", "repository:src:pull")      # push scope first
    assert merge_scopes(("repository:x:push",), ("repository:x:pull",)) == ("repository:x:push,pull",)
    assert covers(("repository:x:pull,push",), ("repository:x:pull",))
    assert not covers(("repository:x:pull",), ("repository:x:pull,push",))
    assert not covers(("repository:x:pull",), ("repository:y:pull",))
    assert covers(("registry:catalog:*",), ("registry:catalog:*",))
    assert covers(("repository:x:*",), ("repository:x:delete",))


def test_token_cache_reuses_covering_tokens_and_expires():
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])
    push = ("repository:x:pull,push",)
    cache.put(push, "tok-push-1234", lifetime=300)
    assert cache.get(push) == "tok-push-1234"
    assert cache.get(("repository:x:pull",)) == "tok-push-1234"     # a superset serves
    assert cache.get(("repository:y:pull",)) is None
    assert redact.redact("Bearer tok-push-1234") == "Bearer ***"     # registered
    now[0] += 295                                                    # within the safety margin
    assert cache.get(push) is None
    cache.put(push, "tok-push-5678", lifetime=300)
    cache.drop(("repository:x:pull",))                               # drops what would be reused
    assert cache.get(push) is None


@pytest.mark.parametrize("body", [b'["token", "x"]', b'"just a string"', b"42"])
def test_a_token_answer_that_is_not_an_object_is_an_auth_error(body):
    from pipeline.registry.auth import _token_from
    from pipeline.registry.errors import RegistryAPIError
    from pipeline.registry.session import Response

    with pytest.raises(RegistryAPIError, match="answer is not a JSON object") as err:
        _token_from(Response(200, body, {"Content-Type": "application/json"}), "reg.example",
                    "token request to auth.example")
    assert err.value.auth


def test_a_web_page_on_v2_is_not_taken_for_a_registry():
    import http.server
    import threading

    from pipeline.registry.client import RegistryAPIError, RegistryClient

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = RegistryClient(f"127.0.0.1:{server.server_address[1]}", retry_attempts=1)
        with pytest.raises(RegistryAPIError, match="answered with a web page, not the registry API"):
            client.head_manifest("team/app", "1.0")
    finally:
        server.shutdown()


def test_refused_credentials_are_renewed_once_and_the_operation_runs_again():
    """A cloud token that expired while release worked: the registry answers 401, the client
    asks `renew` once for fresh credentials and runs the operation again with them."""
    import base64
    import http.server
    import threading

    from pipeline.auth.credentials import Credentials
    from pipeline.registry.client import RegistryAPIError, RegistryClient

    good = "Basic " + base64.b64encode(b"u:fresh-token").decode()

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != good:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="r"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = b'{"name": "team/app", "tags": ["1.0"]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{server.server_address[1]}"
    asked = []

    def renew(fresh="fresh-token"):
        asked.append(1)
        return Credentials("cloud", "u", fresh)
    try:
        client = RegistryClient(host, Credentials("cloud", "u", "expired-token"), retry_attempts=1,
                                renew=renew)
        assert client.list_tags("team/app") == ["1.0"]
        assert len(asked) == 1 and client.credentials.password == "fresh-token"
        # once per client: a second refusal is an error, not a loop
        client.credentials = client._transport.credentials = Credentials("cloud", "u", "bad")
        with pytest.raises(RegistryAPIError):
            client.list_tags("team/app")
        assert len(asked) == 1
        # the same credentials again: no second attempt
        same = RegistryClient(host, Credentials("cloud", "u", "expired-token"), retry_attempts=1,
                              renew=lambda: Credentials("cloud", "u", "expired-token"))
        with pytest.raises(RegistryAPIError):
            same.list_tags("team/app")
    finally:
        server.shutdown()
