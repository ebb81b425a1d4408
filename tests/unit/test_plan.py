from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.errors import UsageError
from pipeline.plan import format_plan, make_plan


def config():
    image = SimpleNamespace(name="myapp", context=Path("/src"), dockerfile="Dockerfile", target=None,
                            build_args={"A": "1"})
    return SimpleNamespace(image=image)


def reg(name, host="localhost:5000", repo="team/myapp", type="generic"):
    return SimpleNamespace(name=name, type=type, registry=host, repository=repo)


def result(tags, latest=True):
    return SimpleNamespace(version=tags[0] if tags else None, tags=tags, latest=latest)


def test_immutable_tag_goes_everywhere_before_any_floating_tag():
    plan = make_plan(config(), result(["1.2.3", "1.2", "1", "latest"]),
                     [reg("a"), reg("b", host="ghcr.io", repo="o/myapp")])
    pushes = [s for s in plan.steps() if s["step"] == "push"]
    assert [s["ref"] for s in pushes[:2]] == ["localhost:5000/team/myapp:1.2.3", "ghcr.io/o/myapp:1.2.3"]
    assert {s["phase"] for s in pushes[:2]} == {"immutable"}
    assert {s["phase"] for s in pushes[2:]} == {"floating"}
    assert pushes[-1]["ref"] == "ghcr.io/o/myapp:latest"
    assert plan.steps()[0]["step"] == "build"
    assert plan.steps()[-1]["step"] == "verify"
    assert plan.local_ref == "myapp:1.2.3"


def test_plan_dict_lists_full_refs_per_registry_and_no_build_args_values():
    plan = make_plan(config(), result(["1.2.3", "latest"]), [reg("a")])
    data = plan.to_dict()
    assert data["registries"] == {"a": ["localhost:5000/team/myapp:1.2.3", "localhost:5000/team/myapp:latest"]}
    assert data["steps"][0]["build_args"] == ["A"]  # names only: a build arg may hold a secret


def test_no_build_plan_uses_the_local_image():
    plan = make_plan(config(), result(["1.0.0"]), [reg("a")], build=False)
    assert plan.build is None
    assert plan.steps()[0] == {"step": "use-local", "image": "myapp:1.0.0"}
    assert "--no-build" in format_plan(plan)


def test_no_tags_is_a_usage_error():
    with pytest.raises(UsageError, match="no tag"):
        make_plan(config(), result([]), [reg("a")])


@pytest.mark.parametrize("version, existing, moves", [
    ("1.9.1", ["2.0.0", "1.9.0", "latest", "2"], False),      # a backport never steals latest
    ("2.0.1", ["2.0.0", "1.9.0", "latest"], True),
    ("2.0.0", ["2.0.0", "latest"], True),                      # re-run of the same release
    ("1.0.0", ["3.0.0-rc.1", "0.9.0"], True),                  # prereleases do not count
    ("v1.10.0", ["v1.9.0", "1.2.0"], True),                    # semver order, not string order
    ("1.2.0", [], True),
])
def test_latest_highest(version, existing, moves):
    from pipeline.plan import latest_moves
    assert latest_moves(version, existing)[0] is moves
