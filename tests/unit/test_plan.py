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


@pytest.mark.parametrize("version, held, moves", [
    ("1.9.1", "2.0.0", False),             # a backport never moves latest (or 1, 1.9...) back
    ("2.0.1", "2.0.0", True),
    ("2.0.0", "2.0.0", True),              # re-run of the same release
    ("1.2.5", "1.3.0", False),             # `1` stays on 1.3.0
    ("v1.10.0", "v1.9.0", True),           # semver order, not string order
    ("1.10.0", "1.9.0", True),
    ("1.0.0-rc.10", "1.0.0-rc.2", True),   # numeric prerelease identifiers compare as numbers
    ("1.0.0-rc.2", "1.0.0-rc.10", False),
    ("1.0.0-1", "1.0.0-alpha", False),     # numeric identifiers sort before alphanumeric ones
    ("1.0.0", "1.0.0-rc.1", True),         # a release is above its prereleases
    ("1.2.0", None, True),                 # unknown: moves, as it always did
    ("main", "1.0.0", True),               # not a version: moves
])
def test_floating_tags_only_move_forward(version, held, moves):
    from pipeline.plan import floating_moves
    assert floating_moves(version, held) is moves


# -- release hygiene (sourceinfo.hygiene) -------------------------------------------------------

def _git(answers):
    return lambda args: answers.get(" ".join(args))


def test_a_clean_tree_tagged_with_the_version_gives_no_warning():
    from pipeline.sourceinfo import hygiene
    git = _git({"rev-parse --is-inside-work-tree": "true", "tag --points-at HEAD": "v1.2.3"})
    assert hygiene(".", "1.2.3", git) == ([], False)
    assert hygiene(".", "v1.2.3+build.7", git) == ([], False)


def test_a_dirty_tree_and_another_tag_are_said():
    from pipeline.sourceinfo import hygiene
    git = _git({"rev-parse --is-inside-work-tree": "true", "status --porcelain --untracked-files=no":
                " M a.py\n M b.py", "tag --points-at HEAD": "v1.2.4 latest-stable"})
    warnings, dirty = hygiene(".", "1.2.3", git)
    assert dirty
    assert warnings == ["the working tree has 2 uncommitted changes: the image is built from them, "
                        "and its revision label names HEAD (--strict refuses this)",
                        "VERSION 1.2.3 is not the git tag at HEAD (latest-stable, v1.2.4)"]


def test_no_tag_at_head_or_no_repository_is_not_a_warning():
    from pipeline.sourceinfo import hygiene
    assert hygiene(".", "1.2.3", _git({"rev-parse --is-inside-work-tree": "true"})) == ([], False)
    assert hygiene(".", "1.2.3", _git({})) == ([], False)
