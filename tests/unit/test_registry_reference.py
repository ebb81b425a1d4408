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


# -- exact messages, ports, IPv6, limits (issue 12: mutation testing) --------------------------

EXAMPLE_HINT = "e.g. ghcr.io/acme/app:1.2.3, localhost:5000/app@sha256:<64 hex>, or alpine"
PORT_HINT = "the port must be a number between 1 and 65535"
COMPONENT_HINT = "lowercase letters, digits and single separators . _ __ - between them"
TAG_HINT = "a tag is 1-128 of [A-Za-z0-9_.-] and may not start with '.' or '-'"
DIGEST_HINT = "expected sha256:<64 lowercase hex> (or sha512:<128 hex>)"


@pytest.mark.parametrize("text, message, hint", [
    ("", "empty image reference", EXAMPLE_HINT),
    ("https://ghcr.io/acme/app", "invalid image reference 'https://ghcr.io/acme/app': remove the "
     "URL scheme 'https://'", EXAMPLE_HINT),
    ("acme/app name", "invalid image reference 'acme/app name': contains whitespace", EXAMPLE_HINT),
    # more than one ':' after the name: a clear usage error, not a confusing component message
    ("app:1:2", "invalid image reference 'app:1:2': more than one ':' after the name ('app:1:2')",
     "write NAME:TAG; a tag cannot contain ':'"),
    ("localhost:5000/team/app:1:2", "invalid image reference 'localhost:5000/team/app:1:2': more "
     "than one ':' after the name ('app:1:2')", "write NAME:TAG; a tag cannot contain ':'"),
    ("ghcr.io/", "invalid image reference 'ghcr.io/': missing repository name", EXAMPLE_HINT),
    # bracketed IPv6 hosts
    ("[::1]x/app", "invalid registry host '[::1]x' in '[::1]x/app'", EXAMPLE_HINT),
    ("[::1/app", "invalid registry host '[::1' in '[::1/app'", EXAMPLE_HINT),
    ("[zz]:5000/app", "invalid registry host '[zz]:5000' in '[zz]:5000/app'", EXAMPLE_HINT),
    ("[::1]:99999/app", "invalid port '99999' in registry host '[::1]:99999' of '[::1]:99999/app'",
     PORT_HINT),
    ("[::1]:65536/app", "invalid port '65536' in registry host '[::1]:65536' of '[::1]:65536/app'",
     PORT_HINT),
    ("[::1]:0/app", "invalid port '0' in registry host '[::1]:0' of '[::1]:0/app'", PORT_HINT),
    ("[::1]:/app", "invalid port '' in registry host '[::1]:' of '[::1]:/app'", PORT_HINT),
    ("[::1]:abc/app", "invalid port 'abc' in registry host '[::1]:abc' of '[::1]:abc/app'", PORT_HINT),
    ("localhost:65536/app", "invalid port '65536' in registry host 'localhost:65536' of "
     "'localhost:65536/app'", PORT_HINT),
    ("ghcr.io:1:2/app", "invalid registry host 'ghcr.io:1:2' in 'ghcr.io:1:2/app'", EXAMPLE_HINT),
    ("acme/App", "invalid image reference 'acme/App': repository name must be lowercase ('App')",
     "use 'acme/app'"),
    ("acme/App-", "invalid image reference 'acme/App-': 'App-' is not a valid repository path "
     "component", COMPONENT_HINT),
    ("acme//app", "invalid image reference 'acme//app': empty path component (double or trailing "
     "'/')", EXAMPLE_HINT),
    ("localhost:5000/a:b/c:1", "invalid image reference 'localhost:5000/a:b/c:1': 'a:b' is not a "
     "valid repository path component", COMPONENT_HINT),
    ("acme/app@x@" + D, f"invalid image reference 'acme/app@x@{D}': 'app@x' is not a valid "
     "repository path component", COMPONENT_HINT),
    ("acme/app:-x", "invalid tag '-x' in 'acme/app:-x'", TAG_HINT),
    ("acme/app@sha256:abc", "invalid digest 'sha256:abc' in 'acme/app@sha256:abc'", DIGEST_HINT),
    ("example.com/" + "a" * 244, f"invalid image reference 'example.com/{'a' * 244}': name longer "
     "than 255 characters", None),
])
def test_invalid_exact_message_and_hint(text, message, hint):
    with pytest.raises(UsageError) as err:
        parse_reference(text)
    assert (err.value.message, err.value.hint) == (message, hint)
    assert err.value.exit_code == 2


@pytest.mark.parametrize("text, host", [
    ("localhost:65535/app", "localhost:65535"),     # the highest port
    ("localhost:1/app", "localhost:1"),             # the lowest
    ("[::1]:65535/app", "[::1]:65535"),
    ("[fe80::1]/app", "[fe80::1]"),                 # IPv6 without a port
    ("example.com/" + "a" * 243, "example.com"),    # 255 characters: the longest name
    ("registry-1.docker.io/acme/app", "docker.io"),  # the API host is Docker Hub too
])
def test_valid_edges(text, host):
    assert parse_reference(text).host == host


def test_surrounding_whitespace_is_trimmed():
    # a reference pasted with a trailing newline or spaces is the reference itself
    assert parse_reference("  alpine:3.20 \n") == parse_reference("alpine:3.20")
    with pytest.raises(UsageError, match="contains whitespace"):
        parse_reference(" acme/ app ")


def test_scheme_message_names_only_the_scheme():
    with pytest.raises(UsageError) as err:
        parse_reference("oci://a://b")
    assert err.value.message == "invalid image reference 'oci://a://b': remove the URL scheme 'oci://'"


def test_reference_without_tag_or_digest_means_latest_and_values_are_frozen():
    import dataclasses
    ref = Reference("localhost:5000", "app")
    assert ref.reference == "latest" and str(ref) == "localhost:5000/app"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"
    assert {parse_reference("alpine"), parse_reference("docker.io/library/alpine:latest")} == {
        Reference("docker.io", "library/alpine", "latest")}


def test_validate_tag():
    from pipeline.registry.reference import validate_tag
    assert validate_tag("v1.2.3") == "v1.2.3"
    with pytest.raises(UsageError, match="invalid tag '.x'"):
        validate_tag(".x")
