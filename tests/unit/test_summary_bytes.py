"""The bytes each registry was sent, in the report: JSON (`registries`), the summary under the
table, the GitHub step summary; and end to end through the Releaser with fake registries whose
uploads go through the real upload attempts (pipeline/registry/upload.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pipeline.app.release import Releaser
from pipeline.app.report import RefResult, Report
from pipeline.ci.step import step_summary
from pipeline.model.config.loader import load_config
from pipeline.model.plan import make_plan
from pipeline.model.status import Status
from pipeline.model.tags import derive_tags, resolve_context
from pipeline.registry import upload
from pipeline.ui.summary import format_report, human_bytes
from tests.unit.test_fanout_with_fakes import MemoryTransport
from tests.unit.test_release_rules import (
    RELEASE_YML,
    VERSION,
    FakeEngine,
    FakeRegistry,
    Image,
    RecordingReporter,
    sha,
)

DIGEST = "sha256:" + "a" * 64


def tally(**counts) -> upload.Tally:
    t = upload.Tally()
    t.add(**counts)
    return t


def sample() -> Report:
    plan = SimpleNamespace(version="1.2.3", tags=("1.2.3",), latest=False)
    report = Report(plan, digest=DIGEST)
    report.results = [RefResult("local", "localhost:5000/t/app:1.2.3", Status.PUSHED, DIGEST, 1.0),
                      RefResult("hub", "docker.io/t/app:1.2.3", Status.PUSHED, DIGEST, 2.0),
                      RefResult("ecr", "1.dkr.ecr/t/app:1.2.3", Status.PUSHED, DIGEST, 3.0)]
    report.transfers = {"local": tally(bytes_sent=61_234_567, blobs_sent=3, blobs_present=2),
                        "hub": tally(blobs_present=4, blobs_mounted=1),
                        "ecr": None,
                        "source": tally(bytes_sent=5)}      # no result here (promote's source)
    return report


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 999, 1000, 61_234_567, 999_960, 3 * 10**12)] == \
        ["0 B", "999 B", "1.0 kB", "61.2 MB", "1.0 MB", "3.0 TB"]


def test_the_json_has_one_object_per_registry_and_keeps_its_other_keys():
    data = json.loads(json.dumps(sample().to_dict()))
    assert set(data) == {"ok", "version", "digest", "tags", "latest", "image_id", "results",
                         "errors", "notes", "registries"}
    assert list(data["registries"]) == ["local", "hub", "ecr"]           # the results' order
    assert data["registries"]["local"] == {"bytes_sent": 61_234_567, "blobs_sent": 3,
                                           "blobs_present": 2, "blobs_mounted": 0}
    assert data["registries"]["hub"]["blobs_mounted"] == 1
    assert data["registries"]["ecr"] == {"bytes_sent": None, "blobs_sent": None,
                                         "blobs_present": None, "blobs_mounted": None}
    assert data["results"][0] == {"registry": "local", "ref": "localhost:5000/t/app:1.2.3",
                                  "status": "pushed", "digest": DIGEST, "seconds": 1.0}


def test_the_summary_has_a_line_per_registry_under_the_table():
    text = format_report(sample())
    assert "\nsent:\n" in text
    assert "  local  3 blobs sent (61.2 MB), 2 already there\n" in text
    assert "  hub    0 blobs sent (0 B), 4 already there, 1 mounted\n" in text
    assert "  ecr    not measured (pushed by the engine)\n" in text
    assert "source" not in text
    assert text.index("sent:") < text.index("released 1.2.3")
    bare = sample()
    bare.transfers = {}
    assert "sent:" not in format_report(bare)


def test_the_step_summary_lists_them_too():
    text = step_summary(sample())
    assert "- local: 3 blobs sent (61.2 MB), 2 already there" in text
    assert "- ecr: not measured (pushed by the engine)" in text


# -- through the Releaser ----------------------------------------------------------------------

class WireRegistry(FakeRegistry):
    """FakeRegistry whose uploads go through upload.py's monolithic attempt."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transport = MemoryTransport(self.blobs)

    def upload_blob(self, repository, digest, size, source):
        upload.monolithic_attempt(self.transport, repository, digest, size, source, ())


@pytest.fixture
def world(tmp_path):
    (tmp_path / "release.yml").write_text(RELEASE_YML)
    config = load_config(str(tmp_path / "release.yml"), build=False)
    fakes = {r.name: WireRegistry(r.name, r.registry, []) for r in config.registries}

    def releaser(targets=("a", "b", "c"), engine=None):
        ctx = resolve_context(version=VERSION, env={}, git=lambda args: None)
        plan = make_plan(config, derive_tags(config.tags, config.flavor, ctx),
                         config.select(list(targets)), build=False)
        return Releaser(config, plan, RecordingReporter(),
                        env={"DOCKER_CONFIG": str(tmp_path / "none")}, engine=engine,
                        client_factory=lambda registry, credentials, **hooks: fakes[registry.name],
                        engine_factory=lambda: pytest.fail("this run must not need an engine"))

    return SimpleNamespace(fakes=fakes, releaser=releaser)


def test_engine_push_then_copies_the_copies_are_counted_the_engine_push_is_not(world):
    image = Image(VERSION, payload=b"x" * 5000)
    size = len(image.config) + len(image.layer)
    world.fakes["c"].blobs[sha(image.layer)] = image.layer       # c has the layer already
    engine = FakeEngine(image, world.fakes)

    report = world.releaser(engine=engine).run(build=False)

    assert report.ok, report.errors
    assert engine.pushes == [f"a:{VERSION}"]
    sent = report.to_dict()["registries"]
    assert sent["a"]["bytes_sent"] is None                       # `docker push`: not measured
    assert sent["b"] == {"bytes_sent": size, "blobs_sent": 2, "blobs_present": 0,
                         "blobs_mounted": 0}
    assert sent["b"]["bytes_sent"] == world.fakes["b"].transport.received
    assert sent["c"] == {"bytes_sent": len(image.config), "blobs_sent": 1, "blobs_present": 1,
                         "blobs_mounted": 0}
    assert "a  not measured (pushed by the engine)" in format_report(report)

    again = world.releaser(engine=engine).run(build=False)       # nothing left to do
    assert again.ok and engine.pushes == [f"a:{VERSION}"]
    assert {name: counts["bytes_sent"] for name, counts in again.to_dict()["registries"].items()} \
        == {"a": 0, "b": 0, "c": 0}
    assert "a  0 blobs sent (0 B), 0 already there" in format_report(again)


def test_promote_reports_the_targets_and_not_the_source(world):
    image = Image(VERSION, payload=b"y" * 3000)
    world.fakes["staging"].hold(image, VERSION)

    report = world.releaser().promote("staging")

    assert report.ok, report.errors
    sent = report.to_dict()["registries"]
    assert list(sent) == ["a", "b", "c"]
    assert {counts["bytes_sent"] for counts in sent.values()} == {len(image.config) + len(image.layer)}
