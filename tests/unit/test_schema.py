"""The JSON Schema of release.yml agrees with the loader (pipeline/model/config/)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.model.config import RetryConfig, load_config
from pipeline.model.config import keys as cfg
from pipeline.model.config.schema import json_schema

# ------------------------------------------------------------------ validation (jsonschema)


def check(value: Any, schema: dict) -> list[str]:
    """Every place `value` breaks `schema`, by jsonschema's draft 2020-12 validator."""
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in validator.iter_errors(value)]


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(json_schema())


# ------------------------------------------------------------------ the schema itself


def _objects(schema: dict, path: str = "$"):
    if schema.get("type") == "object" and "properties" in schema:
        yield path, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _objects(sub, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        yield from _objects(schema["items"], f"{path}[]")


def test_schema_is_draft_2020_12_json_with_descriptions():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert json.loads(json.dumps(schema)) == schema
    objects = dict(_objects(schema))
    assert set(objects) == {"$", "$.image", "$.image.secrets[]", "$.registries[]", "$.retry",
                            "$.ci"}
    for path, obj in objects.items():
        assert obj["additionalProperties"] is False, path
        assert "description" in obj, path
        for key, prop in obj["properties"].items():
            assert prop.get("description"), f"{path}.{key}"


def test_schema_keys_enums_and_defaults_match_the_loader():
    schema = json_schema()
    props = schema["properties"]
    assert tuple(props) == cfg.TOP_KEYS
    assert schema["required"] == list(cfg.TOP_REQUIRED)
    assert tuple(props["image"]["properties"]) == cfg.IMAGE_KEYS
    assert props["image"]["required"] == list(cfg.IMAGE_REQUIRED)
    registry = props["registries"]["items"]
    assert tuple(registry["properties"]) == cfg.REGISTRY_KEYS
    assert registry["required"] == list(cfg.REGISTRY_REQUIRED)
    assert registry["properties"]["type"]["enum"] == list(cfg.REGISTRY_TYPES)
    assert tuple(props["retry"]["properties"]) == cfg.RETRY_KEYS
    retry_defaults = RetryConfig()
    assert props["retry"]["properties"]["attempts"]["default"] == retry_defaults.attempts
    assert props["retry"]["properties"]["max_delay"]["default"] == retry_defaults.max_delay
    assert props["version"]["const"] == 1
    assert tuple(props["ci"]["properties"]) == cfg.CI_KEYS
    assert props["ci"]["properties"]["install"]["pattern"] == cfg.CI_INSTALL_PATTERN


def test_json_schema_returns_a_fresh_copy():
    first = json_schema()
    first["properties"].clear()
    assert json_schema()["properties"]


# ------------------------------------------------------------------ agreement on examples

VALID = {
    "minimal": """\
        image:
          name: myapp
        registries:
          - name: local
            registry: localhost:5000
            repository: team/myapp
        """,
    "full": """\
        version: 1
        image:
          name: team/myapp
          context: .
          dockerfile: Dockerfile
          build_args: {GREETING: hi, VERSION: 1.10, DEBUG: true}
          target: runtime
          labels: {team: core}
        tags:
          - type=semver,pattern={{version}}
          - type=sha
        flavor:
          - latest=auto
        registries:
          - name: local
            type: generic
            registry: localhost:5000
            repository: team/myapp
            username_env: LOCAL_USER
            password_env: LOCAL_PASS
            ca_file: ca.crt
            insecure: false
          - name: ghcr
            type: ghcr
            registry: ghcr.io
            repository: me/myapp
        retry:
          attempts: 1
          max_delay: 0.5
        ci:
          install: git+https://github.com/acme/release.git@v1.2.3
        """,
    "hosts": """\
        image: {name: a.b/c__d}
        flavor: []
        registries:
          - {name: v4, registry: '127.0.0.1:5000', repository: x}
          - {name: v6, registry: '[::1]:5000', repository: x}
          - {name: fqdn, type: ecr, registry: 123456789012.dkr.ecr.eu-west-1.amazonaws.com, repository: x-y}
          - {name: max-port, registry: 'localhost:65535', repository: x}
        retry: {}
        ci: {install: vendor/release_pipeline-1.0-py3-none-any.whl}
        """,
    "ci forms": """\
        image: {name: myapp}
        registries: [{name: local, registry: 'localhost:5000', repository: x}]
        ci: {install: 'release-pipeline @ https://example.com/r-1.0.tar.gz#sha256=ab12'}
        """,
    "ci empty": """\
        image: {name: myapp}
        registries: [{name: local, registry: 'localhost:5000', repository: x}]
        ci: {}
        """,
}

INVALID = {
    "unknown key": ("image:\n  name: myapp\n  dockerfil: x\n", "dockerfil"),
    "bad type enum": ("    type: quay\n", "quay"),
    "upper-case repository": ("    repository: Team/App\n", "Team/App"),
    "username without password": ("    username_env: U\n", "username_env"),
    "scheme in host": ("    registry: https://localhost:5000\n", "https"),
    "port out of range": ("    registry: localhost:65536\n", "65536"),
    "zero attempts": ("retry: {attempts: 0}\n", "attempts"),
    "zero delay": ("retry: {max_delay: 0}\n", "max_delay"),
    "too many attempts": ("retry: {attempts: 21}\n", "attempts"),
    "too long a delay": ("retry: {max_delay: 600.5}\n", "max_delay"),
    "bad version": ("version: 2\n", "version"),
    "empty tags": ("tags: []\n", "tags"),
    "bad registry name": ("    name: Local\n", "Local"),
    "bad env name": ("    username_env: 1X\n    password_env: P\n", "username_env"),
    "build_args list": ("image:\n  name: myapp\n  build_args: [a]\n", "build_args"),
    "no registries": ("registries: []\n", "registries"),
    "ci.install absolute": ("ci: {install: /opt/release}\n", "absolute path"),
    "ci.install home": ("ci: {install: ~/release}\n", "absolute path"),
    "ci.install outside": ("ci: {install: ../release}\n", "leads out of the repository"),
    "ci.install empty": ("ci: {install: ''}\n", "must not be empty"),
    "ci.install blank": ("ci: {install: '  '}\n", "must not be empty"),
    "ci.install number": ("ci: {install: 3}\n", "must be a string"),
    "ci.install list": ("ci: {install: [a]}\n", "must be a string"),
    "ci.install pip option": ("ci: {install: -e .}\n", "pip option"),
    "ci unknown key": ("ci: {instal: x}\n", "instal"),
    "ci not a mapping": ("ci: git+https://x/r.git@v1\n", "ci must be a mapping"),
}

BASE = {
    "image": {"name": "myapp"},
    "registries": [{"name": "local", "registry": "localhost:5000", "repository": "team/myapp"}],
}


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    path = tmp_path / "release.yml"
    path.write_text(textwrap.dedent(text))
    return path


def _invalid_document(snippet: str) -> str:
    """BASE with `snippet` merged in: registry-level lines go into the one registry."""
    data = json.loads(json.dumps(BASE))
    if snippet.startswith("    "):
        data["registries"][0].update(yaml.safe_load(textwrap.dedent(snippet)))
    else:
        data.update(yaml.safe_load(snippet))
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_configs_pass_the_loader_and_the_schema(tmp_path, name):
    path = _write(tmp_path, VALID[name])
    load_config(path)
    assert check(yaml.safe_load(path.read_text()), json_schema()) == []


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_configs_fail_the_loader_and_the_schema(tmp_path, name):
    snippet, word = INVALID[name]
    text = _invalid_document(snippet)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert word in str(info.value)
    assert check(yaml.safe_load(text), json_schema()) != []


def test_base_document_is_valid(tmp_path):
    """The invalid cases differ from BASE only by their snippet."""
    text = yaml.safe_dump(BASE, sort_keys=False)
    load_config(_write(tmp_path, text))
    assert check(BASE, json_schema()) == []
