import pytest

from pipeline.app.sourceinfo import clean_remote_url
from pipeline.engine.client import (
    PushAuthError,
    PushError,
    PushTransientError,
    classify_push_error,
)
from pipeline.registry.auth import parse_challenge


@pytest.mark.parametrize("message, kind", [
    ("unauthorized: authentication required", PushAuthError),
    ("denied: requested access to the resource is denied", PushAuthError),
    ("no basic auth credentials", PushAuthError),
    ('Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', PushTransientError),
    ("received unexpected HTTP status: 503 Service Unavailable", PushTransientError),
    ("toomanyrequests: rate limit", PushTransientError),
    ("manifest invalid: manifest invalid", PushError),
])
def test_push_errors_are_classified(message, kind):
    assert classify_push_error(message) is kind


def test_bearer_challenge_is_parsed():
    ch = parse_challenge('Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push"')
    assert ch.scheme == "bearer"
    assert ch.params == {"realm": "https://auth.example/token", "service": "registry",
                         "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="Registry Realm"').scheme == "basic"


@pytest.mark.parametrize("remote, url", [
    ("git@github.com:acme/app.git", "https://github.com/acme/app"),
    ("https://user:ghp_secret@github.com/acme/app.git", "https://github.com/acme/app"),
    ("ssh://git@gitlab.example:2222/g/app.git", "https://gitlab.example/g/app"),
    ("/local/path", None),
])
def test_remote_urls_never_keep_credentials(remote, url):
    assert clean_remote_url(remote) == url


def test_ci_provided_source_urls_are_scrubbed_too():
    from pipeline.app.sourceinfo import source_url
    env = {"CI_PROJECT_URL": "https://gitlab-ci-token:glpat-SECRET@gitlab.example.com:8443/g/p"}
    assert source_url(".", env) == "https://gitlab.example.com:8443/g/p"
    env = {"GITHUB_REPOSITORY": "acme/app", "GITHUB_SERVER_URL": "https://x:tok@ghe.example"}
    assert source_url(".", env) == "https://ghe.example/acme/app"


@pytest.mark.parametrize("status, expected", [
    ([["driver-type", "io.containerd.snapshotter.v1"]], True),       # Engine 29's default store
    ([["Backing Filesystem", "extfs"], ["Supports d_type", "true"]], False),   # overlay2
    (None, False),
])
def test_the_containerd_image_store_is_recognised(status, expected):
    from types import SimpleNamespace

    from pipeline.engine.client import Engine
    api = SimpleNamespace(info=lambda: {"Driver": "overlayfs", "DriverStatus": status})
    engine = Engine(client=SimpleNamespace(api=api))
    assert engine.uses_containerd_store() is expected
