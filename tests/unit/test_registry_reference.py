"""parse_reference: Docker's rules for hosts, Docker Hub, tags and digests."""

from __future__ import annotations

import pytest

from pipeline.errors import UsageError
from pipeline.registry.reference import Reference, parse_reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text, host, repo, tag, digest, api_host", [
    ("alpine", "docker.io", "library/alpine", "latest", None, "registry-1.docker.io"),
    ("alpine:3.20", "docker.io", "library/alpine", "3.20", None, "registry-1.docker.io"),
    ("library/alpine", "docker.io", "library/alpine", "latest", None, "registry-1.docker.io"),
    ("docker.io/alpine", "docker.io", "library/alpine", "latest", None, "registry-1.docker.io"),
    ("index.docker.io/acme/app:1", "docker.io", "acme/app", "1", None, "registry-1.docker.io"),
    ("acme/app", "docker.io", "acme/app", "latest", None, "registry-1.docker.io"),
    ("ghcr.io/acme/app:v1.2.3", "ghcr.io", "acme/app", "v1.2.3", None, "ghcr.io"),
    ("localhost/app", "localhost", "app", "latest", None, "localhost"),
    ("localhost:5000/team/app:1.0", "localhost:5000", "team/app", "1.0", None, "localhost:5000"),
    ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000", "a/b/c", "latest", None, "127.0.0.1:5000"),
    ("registry:5000/app", "registry:5000", "app", "latest", None, "registry:5000"),
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None, "[::1]:5000"),
    (f"ghcr.io/acme/app@{D}", "ghcr.io", "acme/app", None, D, "ghcr.io"),
    (f"acme/app:1.0@{D}", "docker.io", "acme/app", "1.0", D, "registry-1.docker.io"),
    ("a.b/c__d/e-f.g_h:T_1.x-y", "a.b", "c__d/e-f.g_h", "T_1.x-y", None, "a.b"),
    ("Registry.Example.COM/app", "registry.example.com", "app", "latest", None, "registry.example.com"),
])
def test_parse(text, host, repo, tag, digest, api_host):
    ref = parse_reference(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == (host, repo, tag, digest)
    assert ref.api_host == api_host
    assert parse_reference(str(ref)) == ref                    # str() round-trips
    assert ref.reference == (digest or tag)


@pytest.mark.parametrize("canonical", [
    "docker.io/library/alpine:latest", "ghcr.io/acme/app:1.2.3", "localhost:5000/x@" + D,
    "example.com:443/a/b:c@" + D,
])
def test_canonical_strings_are_unchanged(canonical):
    assert str(parse_reference(canonical)) == canonical


def test_str_and_helpers():
    ref = parse_reference("alpine")
    assert str(ref) == "docker.io/library/alpine:latest"
    assert str(ref.with_tag("edge")) == "docker.io/library/alpine:edge"
    assert str(ref.with_digest(D)) == f"docker.io/library/alpine:latest@{D}"
    assert Reference("localhost:5000", "app", None, D).reference == D


@pytest.mark.parametrize("text, message", [
    ("", "empty image reference"),
    ("   ", "empty image reference"),
    ("https://ghcr.io/acme/app", "remove the URL scheme"),
    ("acme/App", "must be lowercase"),
    ("ghcr.io/acme/App:1", "must be lowercase"),
    ("acme//app", "empty path component"),
    ("acme/app/", "empty path component"),
    ("acme/-app", "not a valid repository path component"),
    ("acme/app:", "invalid tag ''"),
    ("acme/app:-x", "invalid tag '-x'"),
    ("acme/app:" + "x" * 129, "invalid tag"),
    ("acme/app@sha256:abc", "invalid digest"),
    ("acme/app@md5:" + "a" * 32, "invalid digest"),
    ("acme/app@sha256:" + "A" * 64, "invalid digest"),
    ("localhost:0/app", "invalid port '0'"),
    ("localhost:99999/app", "invalid port"),
    ("localhost:abc/app", "invalid port"),
    ("bad_host.com/app", "invalid registry host"),
    ("ghcr.io/", "missing repository name"),
    ("acme/app name", "whitespace"),
    ("example.com/" + "a" * 300, "longer than 255"),
])
def test_invalid(text, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as err:
        parse_reference(text)
    assert err.value.exit_code == 2
