"""The release's safety rules with fake registries: no Docker Engine, no registry, no network.

"Floating tags move only after every registry holds the immutable tag", in the order of the
plan (`latest` last), and only forward. The Releaser gets its clients from a client factory
(pipeline/app/ports.py) and its engine from an engine factory, so the real steps
(app/immutable.py, floating.py, verify.py, registry/copy.py) run against dictionaries.
"""

from __future__ import annotations

import hashlib
import json
import threading
from types import SimpleNamespace

import pytest

from pipeline.app.immutable import ImmutableVersionError
from pipeline.app.release import Releaser
from pipeline.model.config.loader import load_config
from pipeline.model.plan import make_plan
from pipeline.model.status import Status
from pipeline.model.tags import derive_tags, resolve_context
from pipeline.registry.client import ManifestInfo
from pipeline.registry.errors import RegistryAPIError
from pipeline.registry.manifest import OCI_MANIFEST

VERSION = "1.2.3"
FLOATING = ["1.2", "1", "latest"]          # what the default tag rules give 1.2.3, in order
REPO = "team/app"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

RELEASE_YML = """\
image:
  name: myapp
  context: .
registries:
  - {name: staging, registry: staging.example.com, repository: team/app}
  - {name: a, registry: a.example.com, repository: team/app}
  - {name: b, registry: b.example.com, repository: team/app}
  - {name: c, registry: c.example.com, repository: team/app}
"""


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Image:
    """An image manifest of one layer whose config carries the version label."""

    def __init__(self, version: str | None, payload: bytes = b""):
        labels = {"org.opencontainers.image.version": version} if version else {}
        self.config = json.dumps({"architecture": "amd64", "os": "linux",
                                  "config": {"Labels": labels}}).encode()
        self.layer = b"layer of " + (version or "no version").encode() + payload
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(self.config), "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha(self.layer), "size": len(self.layer)}],
        }).encode()
        self.digest = sha(self.manifest)
        self.image_id = sha(self.config)


class FakeRegistry:
    """One registry (one repository) in memory, satisfying pipeline.app.ports.RegistryAPI.
    Every manifest PUT is appended to the shared `log` as (registry name, reference)."""

    def __init__(self, name: str, host: str, log: list, refuse: set[str] = frozenset()):
        self.name, self.host, self.log, self.refuse = name, host, log, set(refuse)
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, bytes] = {}       # digest -> bytes
        self.tags: dict[str, str] = {}              # tag -> digest
        self.lock = threading.Lock()

    api_host = property(lambda self: self.host)
    registry_key = property(lambda self: self.host)

    def hold(self, image: Image, *tags: str) -> None:
        """Put an image here before the test (what an earlier release left)."""
        self.blobs.update({sha(image.config): image.config, sha(image.layer): image.layer})
        self.manifests[image.digest] = image.manifest
        self.tags.update({t: image.digest for t in tags})

    def _digest(self, reference: str) -> str | None:
        return reference if reference.startswith("sha256:") else self.tags.get(reference)

    def head_manifest(self, repository, reference):
        digest = self._digest(reference)
        if digest is None or digest not in self.manifests:
            return None
        return ManifestInfo(digest, OCI_MANIFEST, len(self.manifests[digest]))

    def get_manifest(self, repository, reference):
        info = self.head_manifest(repository, reference)
        if info is None:
            raise RegistryAPIError(f"{self.host}: {repository}:{reference}: manifest unknown",
                                   status=404, code="MANIFEST_UNKNOWN")
        return self.manifests[info.digest], info

    def put_manifest(self, repository, reference, body, media_type=None):
        if reference in self.refuse:
            raise RegistryAPIError(f"{self.host}: PUT manifest {repository}:{reference}: denied",
                                   status=403, code="DENIED")
        data = json.loads(body)
        missing = [d["digest"] for d in [data["config"], *data["layers"]] if d["digest"] not in self.blobs]
        assert not missing, f"{self.name}: manifest PUT before its blobs {missing}"
        with self.lock:
            self.manifests[sha(body)] = bytes(body)
            if not reference.startswith("sha256:"):
                self.tags[reference] = sha(body)
            self.log.append((self.name, reference))
        return ManifestInfo(sha(body), media_type or OCI_MANIFEST, len(body))

    def delete_manifest(self, repository, digest):
        raise AssertionError("a release never deletes")

    def head_blob(self, repository, digest):
        return len(self.blobs[digest]) if digest in self.blobs else None

    def get_blob(self, repository, digest, size=None):
        return self.blobs[digest]

    def open_blob(self, repository, digest, size=None):
        return iter([self.blobs[digest]])

    def mount_blob(self, repository, digest, from_repository):
        return False

    def upload_blob(self, repository, digest, size, source):
        data = source if isinstance(source, bytes) else b"".join(source())
        assert sha(data) == digest and len(data) == size
        self.blobs[digest] = data

    def list_tags(self, repository):
        return sorted(self.tags)

    def catalog(self):
        return [REPO]

    def close(self):
        pass


class RecordingReporter:
    """A Reporter (pipeline.app.ports) that keeps what it was told."""

    def __init__(self):
        self.done: list[tuple[str, str, Status]] = []
        self.messages: list[str] = []

    def start(self, targets): pass
    def stop(self): pass
    def close(self): pass
    def build_line(self, line): pass
    def push_started(self, registry, ref): pass
    def push_progress(self, registry, event): pass
    def retrying(self, registry, ref, attempt, error, delay): pass

    def message(self, text):
        self.messages.append(text)

    def push_done(self, registry, ref, status, digest):
        self.done.append((registry, ref, status))


class FakeEngine:
    """The engine half of build-push: a local image it "pushes" into the fake registries."""

    def __init__(self, image: Image, registries: dict[str, FakeRegistry]):
        self.image, self.by_host = image, {r.host: r for r in registries.values()}
        self.pushes: list[str] = []

    def require_inspect(self, ref):
        return {"Id": self.image.image_id, "RepoDigests": [], "RootFS": {"Layers": []}}

    def uses_containerd_store(self):
        return True             # so the engine pushes (no export to fan out)

    def tag(self, image_id, repository, tag):
        pass

    def push(self, repository, tag, auth_config, on_progress):
        host, repo = repository.split("/", 1)
        registry = self.by_host[host]
        self.pushes.append(f"{registry.name}:{tag}")
        for blob in (self.image.config, self.image.layer):
            registry.upload_blob(repo, sha(blob), len(blob), blob)
        return registry.put_manifest(repo, tag, self.image.manifest, OCI_MANIFEST).digest


@pytest.fixture
def world(tmp_path):
    """release.yml, the fake registries (all empty) and a Releaser maker for VERSION."""
    (tmp_path / "release.yml").write_text(RELEASE_YML)
    config = load_config(str(tmp_path / "release.yml"), build=False)
    log: list[tuple[str, str]] = []
    fakes = {r.name: FakeRegistry(r.name, r.registry, log) for r in config.registries}
    env = {"DOCKER_CONFIG": str(tmp_path / "no-docker-config")}     # anonymous everywhere

    def releaser(version=VERSION, targets=("a", "b", "c"), *, engine=None, force=False):
        ctx = resolve_context(version=version, env={}, git=lambda args: None)
        plan = make_plan(config, derive_tags(config.tags, config.flavor, ctx),
                         config.select(list(targets)), build=False)
        assert [t.floating for t in plan.targets] == [tuple(FLOATING)] * len(targets)
        reporter = RecordingReporter()
        made = Releaser(config, plan, reporter, env=env, engine=engine, force=force,
                        client_factory=lambda registry, credentials, **hooks: fakes[registry.name],
                        engine_factory=lambda: pytest.fail("this run must not need an engine"))
        return made, reporter

    return SimpleNamespace(config=config, fakes=fakes, log=log, releaser=releaser)


def floating_writes(log, registry=None) -> list[tuple[str, str]]:
    return [(r, ref) for r, ref in log if ref in FLOATING and registry in (None, r)]


def statuses(report) -> dict[tuple[str, str], Status]:
    return {(r.registry, r.ref.rsplit(":", 1)[1]): r.status for r in report.results}


# -- all or nothing --------------------------------------------------------------------------

def test_one_registry_refusing_the_immutable_tag_moves_no_floating_tag_anywhere(world):
    image = Image(VERSION)
    world.fakes["staging"].hold(image, VERSION)
    world.fakes["b"].refuse.add(VERSION)
    releaser, _ = world.releaser()

    report = releaser.promote("staging")

    assert not report.ok
    assert report.errors == [f"the immutable tag {VERSION} did not reach: b; no floating tag was "
                             f"moved on any registry"]
    assert floating_writes(world.log) == []
    for name in ("a", "b", "c"):
        assert not set(FLOATING) & set(world.fakes[name].tags), name
    assert world.fakes["a"].tags == world.fakes["c"].tags == {VERSION: image.digest}
    got = statuses(report)
    assert got[("b", VERSION)] == Status.FAILED
    assert {got[(r, t)] for r in "abc" for t in FLOATING} == {Status.SKIPPED}


def test_with_every_registry_holding_the_immutable_tag_the_floating_tags_move_latest_last(world):
    image = Image(VERSION)
    world.fakes["staging"].hold(image, VERSION)
    releaser, reporter = world.releaser()

    report = releaser.promote("staging")         # the engine factory fails if it is called

    assert report.ok, report.errors
    assert report.digest == image.digest
    for name in ("a", "b", "c"):
        assert world.fakes[name].tags == {tag: image.digest for tag in [VERSION, *FLOATING]}
        assert [ref for _, ref in floating_writes(world.log, name)] == FLOATING   # latest last
    last_immutable = max(i for i, (_, ref) in enumerate(world.log) if ref == VERSION)
    first_floating = min(i for i, (_, ref) in enumerate(world.log) if ref in FLOATING)
    assert last_immutable < first_floating
    assert set(statuses(report).values()) == {Status.PUSHED}
    assert sorted(r for r, _, status in reporter.done if status == Status.PUSHED) == [*"aaaabbbbcccc"]
    assert world.fakes["staging"].tags == {VERSION: image.digest}     # the source is untouched


def test_a_registry_that_already_holds_the_version_is_left_alone(world):
    image = Image(VERSION)
    for name in ("staging", "a"):
        world.fakes[name].hold(image, VERSION)
    releaser, _ = world.releaser()

    report = releaser.promote("staging")

    assert report.ok, report.errors
    assert ("a", VERSION) not in world.log
    assert statuses(report)[("a", VERSION)] == Status.ALREADY
    assert statuses(report)[("b", VERSION)] == Status.PUSHED
    assert world.fakes["a"].tags["latest"] == image.digest


def test_another_image_under_the_version_stops_the_release_before_any_push(world):
    world.fakes["staging"].hold(Image(VERSION), VERSION)
    world.fakes["c"].hold(Image(VERSION, b" rebuilt"), VERSION)
    releaser, _ = world.releaser()

    with pytest.raises(ImmutableVersionError, match="already released as another image"):
        releaser.promote("staging")
    assert world.log == []


# -- only forward ----------------------------------------------------------------------------

def test_a_floating_tag_on_a_higher_version_does_not_move_back(world):
    mine, newer = Image(VERSION), Image("2.0.0")
    world.fakes["staging"].hold(mine, VERSION)
    world.fakes["a"].hold(newer, "2.0.0", "2.0", "2", "latest")
    releaser, _ = world.releaser()

    report = releaser.promote("staging")

    assert report.ok, report.errors
    a = world.fakes["a"].tags
    assert a["latest"] == newer.digest                        # stays on 2.0.0
    assert a["1.2"] == a["1"] == a[VERSION] == mine.digest    # these are 1.2.3's
    assert ("a", "latest") not in world.log
    assert world.fakes["b"].tags["latest"] == world.fakes["c"].tags["latest"] == mine.digest
    assert any(n.startswith("[a] latest stays on 2.0.0") for n in report.notes), report.notes
    assert ("a", "latest") not in statuses(report)


def test_force_moves_a_floating_tag_back(world):
    mine, newer = Image(VERSION), Image("2.0.0")
    world.fakes["staging"].hold(mine, VERSION)
    world.fakes["a"].hold(newer, "2.0.0", "latest")
    releaser, _ = world.releaser(force=True)

    report = releaser.promote("staging")

    assert report.ok, report.errors
    assert world.fakes["a"].tags["latest"] == mine.digest
    assert world.fakes["a"].tags["2.0.0"] == newer.digest


def test_the_version_label_of_the_image_a_tag_points_at_counts_without_a_version_tag(world):
    mine, newer = Image(VERSION), Image("3.0.0")
    world.fakes["staging"].hold(mine, VERSION)
    world.fakes["b"].hold(newer, "latest", "stable")          # no semver tag says 3.0.0
    releaser, _ = world.releaser()

    report = releaser.promote("staging")

    assert report.ok, report.errors
    assert world.fakes["b"].tags["latest"] == newer.digest
    assert world.fakes["b"].tags["1"] == mine.digest
    assert any(n.startswith("[b] latest stays on 3.0.0") for n in report.notes), report.notes


def test_a_floating_tag_on_a_lower_version_moves_forward(world):
    mine, older = Image(VERSION), Image("1.1.0")
    world.fakes["staging"].hold(mine, VERSION)
    world.fakes["a"].hold(older, "1.1.0", "1.1", "1", "latest")
    releaser, _ = world.releaser()

    report = releaser.promote("staging")

    assert report.ok, report.errors
    assert world.fakes["a"].tags["latest"] == world.fakes["a"].tags["1"] == mine.digest
    assert world.fakes["a"].tags["1.1"] == older.digest
    assert not report.notes


# -- build-push through the engine seam -------------------------------------------------------

def test_build_push_pushes_once_through_the_engine_then_copies_then_moves_floating_tags(world):
    image = Image(VERSION)
    engine = FakeEngine(image, world.fakes)
    releaser, _ = world.releaser(engine=engine)

    report = releaser.run(build=False)

    assert report.ok, report.errors
    assert engine.pushes == [f"a:{VERSION}"]                  # the first registry; others copy
    assert report.image_id == image.image_id and report.digest == image.digest
    for name in ("a", "b", "c"):
        assert world.fakes[name].tags["latest"] == image.digest
        assert [ref for _, ref in floating_writes(world.log, name)] == FLOATING
    last_immutable = max(i for i, (_, ref) in enumerate(world.log) if ref == VERSION)
    assert last_immutable < min(i for i, (_, ref) in enumerate(world.log) if ref in FLOATING)


def test_build_push_with_a_registry_refusing_the_copy_moves_no_floating_tag(world):
    image = Image(VERSION)
    world.fakes["c"].refuse.add(VERSION)
    releaser, _ = world.releaser(engine=FakeEngine(image, world.fakes))

    report = releaser.run(build=False)

    assert not report.ok
    assert "did not reach: c" in report.errors[0]
    assert floating_writes(world.log) == []
    assert world.fakes["a"].tags == world.fakes["b"].tags == {VERSION: image.digest}


# -- a Status prints as its word ---------------------------------------------------------------

def test_reports_read_the_same_with_status_words_and_plain_strings():
    """JSON, the summary table, the GitHub step summary, step outputs and dotenv: a Status
    is written exactly as the string it replaced."""
    from pipeline.app.report import RefResult, Report
    from pipeline.ci.step import (
        dotenv_text,
        github_output_text,
        output_values,
        step_summary,
    )
    from pipeline.ui.summary import format_report

    plan = SimpleNamespace(version=VERSION, tags=(VERSION, "latest"), latest=True)
    digest = "sha256:" + "a" * 64

    def outputs(word):
        report = Report(plan, digest=digest)
        report.results = [RefResult("a", "h/a:1.2.3", word("pushed"), digest, 1.0),
                          RefResult("b", "h/b:1.2.3", word("already there"), digest, 0.5),
                          RefResult("c", "h/c:latest", word("failed"), None, 0.1, "boom"),
                          RefResult("d", "h/d:latest", word("skipped"))]
        return [json.dumps(report.to_dict(), indent=2), json.dumps(report.to_dict()),
                format_report(report), step_summary(report), dotenv_text(report),
                github_output_text(output_values(report), delimiter="EOF")]

    assert outputs(Status) == outputs(str)
    assert '"status": "already there"' in outputs(Status)[0]
    assert "RELEASE_TAGS=h/a:1.2.3,h/b:1.2.3" in outputs(Status)[4]


# -- the seams ---------------------------------------------------------------------------------

def _members(protocol) -> dict:
    return {name: value for name, value in vars(protocol).items()
            if not name.startswith("_") and (callable(value) or isinstance(value, property))}


@pytest.mark.parametrize("implementation", ["RegistryClient", "FakeRegistry"])
def test_the_registry_clients_have_what_the_use_cases_call(implementation):
    import inspect

    from pipeline.app.ports import RegistryAPI
    from pipeline.registry.client import RegistryClient

    cls = {"RegistryClient": RegistryClient, "FakeRegistry": FakeRegistry}[implementation]
    members = _members(RegistryAPI)
    assert {"head_manifest", "put_manifest", "list_tags", "registry_key"} <= set(members)
    for name, member in members.items():
        assert hasattr(cls, name), name
        if callable(member):
            wanted = [p for p in inspect.signature(member).parameters if p != "self"]
            have = list(inspect.signature(getattr(cls, name)).parameters)[1:len(wanted) + 1]
            assert have == wanted, (name, have, wanted)


@pytest.mark.parametrize("implementation", ["PlainReporter", "LiveReporter", "CIReporter"])
def test_the_reporters_have_what_the_use_cases_call(implementation):
    import inspect

    from pipeline.app.ports import Reporter
    from pipeline.ui import progress

    cls = getattr(progress, implementation)
    for name, member in _members(Reporter).items():
        wanted = list(inspect.signature(member).parameters)
        assert list(inspect.signature(getattr(cls, name)).parameters) == wanted, name
