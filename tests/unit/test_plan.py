from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.errors import UsageError
from pipeline.model.plan import format_plan, make_plan


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
    from pipeline.model.plan import floating_moves
    assert floating_moves(version, held) is moves


# -- release hygiene (sourceinfo.hygiene) -------------------------------------------------------

def _git(answers):
    return lambda args: answers.get(" ".join(args))


def test_a_clean_tree_tagged_with_the_version_gives_no_warning():
    from pipeline.app.sourceinfo import hygiene
    git = _git({"rev-parse --is-inside-work-tree": "true", "tag --points-at HEAD": "v1.2.3"})
    assert hygiene(".", "1.2.3", git) == ([], False)
    assert hygiene(".", "v1.2.3+build.7", git) == ([], False)


def test_a_dirty_tree_and_another_tag_are_said():
    from pipeline.app.sourceinfo import hygiene
    git = _git({"rev-parse --is-inside-work-tree": "true", "status --porcelain --untracked-files=no":
                " M a.py\n M b.py", "tag --points-at HEAD": "v1.2.4 latest-stable"})
    warnings, dirty = hygiene(".", "1.2.3", git)
    assert dirty
    assert warnings == ["the working tree has 2 uncommitted changes: the image is built from them, "
                        "and its revision label names HEAD (--strict refuses this)",
                        "VERSION 1.2.3 is not the git tag at HEAD (latest-stable, v1.2.4)"]


def test_no_tag_at_head_or_no_repository_is_not_a_warning():
    from pipeline.app.sourceinfo import hygiene
    assert hygiene(".", "1.2.3", _git({"rev-parse --is-inside-work-tree": "true"})) == ([], False)
    assert hygiene(".", "1.2.3", _git({})) == ([], False)


# -- exact plan output, to_dict and make_plan details (issue 12: mutation testing) ---------------

def full_config(platforms=(), target=None, index_format="docker", **extra):
    image = SimpleNamespace(name="myapp", context=Path("/src"), dockerfile="Dockerfile", target=target,
                            build_args={"B": "2", "A": "1"}, builder="auto",
                            secrets=(SimpleNamespace(id="npm"),),
                            cache_from=(SimpleNamespace(text="type=registry,ref=r/app:cache"),),
                            cache_to=(), platforms=platforms, index_format=index_format, **extra)
    return SimpleNamespace(image=image)


TWO = [reg("a"), reg("b", host="ghcr.io")]
BUILDER_LINE = ("builder: BuildKit via the docker CLI (buildx) for image.secrets and cache "
                "type=registry,ref=r/app:cache; cache from: type=registry,ref=r/app:cache "
                "(+ inline cache in the image)")


def test_latest_tag_is_the_last_tag_and_only_when_latest():
    plan = make_plan(config(), result(["1.2.3", "1.2", "latest"]), [reg("a")])
    assert plan.latest_tag == "latest"
    assert plan.tags == ("1.2.3", "1.2", "latest")
    assert make_plan(config(), result(["1.2.3", "1.2"], latest=False), [reg("a")]).latest_tag is None
    assert plan.latest_if_highest is False
    highest = SimpleNamespace(version="1.2.3", tags=["1.2.3", "latest"], latest=True,
                              latest_if_highest=True)
    assert make_plan(config(), highest, [reg("a")]).latest_if_highest is True


def test_a_version_without_tags_or_tags_without_a_version_are_usage_errors():
    for res in (SimpleNamespace(version=None, tags=["x"], latest=False),
                SimpleNamespace(version="1.0.0", tags=[], latest=False)):
        with pytest.raises(UsageError) as err:
            make_plan(config(), res, [reg("a")])
        assert err.value.message == "the tag rules produced no tag for this version"
        assert err.value.hint == ("check `tags:` in release.yml with `release tags VERSION`; semver "
                                  "rules need a version like 1.2.3")


def test_targets_carry_every_tag_of_the_registry():
    plan = make_plan(config(), result(["1.2.3", "1.2", "latest"]), TWO)
    a, b = plan.targets
    assert (a.registry, a.type, a.host, a.repository) == ("a", "generic", "localhost:5000", "team/myapp")
    assert (a.immutable, a.floating) == ("1.2.3", ("1.2", "latest"))
    assert b.image == "ghcr.io/team/myapp" and b.ref("x") == "ghcr.io/team/myapp:x"
    assert b.tags == ("1.2.3", "1.2", "latest")


def test_builder_and_index_format_defaults():
    plan = make_plan(config(), result(["1.0.0"]), [reg("a")])
    assert plan.build.builder == "auto" and plan.index_format == "oci" and plan.platforms == ()
    assert plan.build.secrets == () and plan.build.cache_from == () and plan.build.cache_to == ()
    cfg = config()
    cfg.image.builder, cfg.image.index_format, cfg.image.platforms = None, None, None
    plan = make_plan(cfg, result(["1.0.0"]), [reg("a")])
    assert plan.build.builder == "auto" and plan.index_format == "oci" and plan.platforms == ()
    cfg.image.builder, cfg.image.index_format = "classic", "docker"
    plan = make_plan(cfg, result(["1.0.0"]), [reg("a")])
    assert plan.build.builder == "classic" and plan.index_format == "docker"


def test_build_step_to_dict_lists_names_only_and_optional_keys_when_set():
    cfg = full_config()
    cfg.image.cache_to = (SimpleNamespace(text="type=inline"),)
    step = make_plan(cfg, result(["1.0.0"]), [reg("a")]).build
    assert step.to_dict() == {"context": "/src", "dockerfile": "Dockerfile", "target": None,
                              "build_args": ["A", "B"], "builder": "auto", "secrets": ["npm"],
                              "cache_from": ["type=registry,ref=r/app:cache"],
                              "cache_to": ["type=inline"]}
    from pipeline.model.build_route import describe_route
    assert step.describe_builder() == describe_route("auto", secrets=True,
                                                     cache_from=step.cache_from, cache_to=step.cache_to)
    assert step.describe_builder().startswith("builder: BuildKit via the docker CLI")


def test_format_plan_multi_platform_build_line_by_line():
    plan = make_plan(full_config(("linux/amd64", "linux/arm64"), target="prod"),
                     result(["1.2.3", "1.2", "latest"]), TWO)
    assert format_plan(plan).split("\n") == [
        "version 1.2.3  tags: 1.2.3, 1.2, latest",
        "1. build 2 platforms from /src/Dockerfile (target prod), one build each",
        "     " + BUILDER_LINE,
        "     linux/amd64    myapp:1.2.3-linux-amd64",
        "     linux/arm64    myapp:1.2.3-linux-arm64",
        "2. push each platform image by digest (no tag) and one Docker manifest list of them, then "
        "the immutable tag 1.2.3 on the index (registries in parallel)",
        "     [a] localhost:5000/team/myapp:1.2.3",
        "     [b] ghcr.io/team/myapp:1.2.3",
        "3. move the floating tags, only once step 2 succeeded on every registry",
        "     [a] localhost:5000/team/myapp:1.2",
        "     [a] localhost:5000/team/myapp:latest",
        "     [b] ghcr.io/team/myapp:1.2",
        "     [b] ghcr.io/team/myapp:latest",
        "4. verify that every reference resolves to the same digest on its registry",
    ]


def test_format_plan_multi_platform_without_build_and_unknown_index_format():
    plan = make_plan(full_config(("linux/amd64", "linux/arm/v7"), index_format="other"),
                     result(["1.2.3"]), [reg("a")], build=False)
    assert format_plan(plan).split("\n") == [
        "version 1.2.3  tags: 1.2.3",
        "1. use the local images of 2 platforms (--no-build)",
        "     linux/amd64    myapp:1.2.3-linux-amd64",
        "     linux/arm/v7   myapp:1.2.3-linux-arm-v7",
        "2. push each platform image by digest (no tag) and one other of them, then the immutable "
        "tag 1.2.3 on the index (registries in parallel)",
        "     [a] localhost:5000/team/myapp:1.2.3",
        "3. no floating tags for this version",
        "4. verify that every reference resolves to the same digest on its registry",
    ]


def test_format_plan_single_platform_lines():
    built = make_plan(full_config(("linux/arm64",), target="prod"), result(["2.0.0", "latest"]),
                      [reg("a")])
    assert format_plan(built).split("\n") == [
        "version 2.0.0  tags: 2.0.0, latest",
        "1. build myapp:2.0.0 for linux/arm64 from /src/Dockerfile (target prod)",
        "     " + BUILDER_LINE,
        "2. push the immutable tag 2.0.0 (registries in parallel)",
        "     [a] localhost:5000/team/myapp:2.0.0",
        "3. move the floating tags, only once step 2 succeeded on every registry",
        "     [a] localhost:5000/team/myapp:latest",
        "4. verify that every reference resolves to the same digest on its registry",
    ]
    plain = make_plan(config(), result(["2.0.0"]), [reg("a")])
    assert format_plan(plain).split("\n")[1] == "1. build myapp:2.0.0 from /src/Dockerfile"
    local = make_plan(config(), result(["2.0.0"]), [reg("a")], build=False)
    assert format_plan(local).split("\n")[:3] == [
        "version 2.0.0  tags: 2.0.0", "1. use the local image myapp:2.0.0 (--no-build)",
        "2. push the immutable tag 2.0.0 (registries in parallel)"]


def test_plan_to_dict_multi_platform_in_full():
    plan = make_plan(full_config(("linux/amd64", "linux/arm64"), target="prod"),
                     result(["1.2.3", "latest"]), TWO)
    build = {"context": "/src", "dockerfile": "Dockerfile", "target": "prod", "build_args": ["A", "B"],
             "builder": "auto", "secrets": ["npm"], "cache_from": ["type=registry,ref=r/app:cache"]}
    a, b = "localhost:5000/team/myapp", "ghcr.io/team/myapp"
    assert plan.to_dict() == {
        "version": "1.2.3", "tags": ["1.2.3", "latest"], "latest": True, "local_image": "myapp:1.2.3",
        "registries": {"a": [f"{a}:1.2.3", f"{a}:latest"], "b": [f"{b}:1.2.3", f"{b}:latest"]},
        "steps": [
            {"step": "build", "platform": "linux/amd64", "image": "myapp:1.2.3-linux-amd64", **build},
            {"step": "build", "platform": "linux/arm64", "image": "myapp:1.2.3-linux-arm64", **build},
            {"step": "index", "format": "docker", "platforms": ["linux/amd64", "linux/arm64"],
             "push": "each platform image by digest (no tag), then the index by digest"},
            {"step": "push", "phase": "immutable", "registry": "a", "ref": f"{a}:1.2.3"},
            {"step": "push", "phase": "immutable", "registry": "b", "ref": f"{b}:1.2.3"},
            {"step": "push", "phase": "floating", "registry": "a", "ref": f"{a}:latest"},
            {"step": "push", "phase": "floating", "registry": "b", "ref": f"{b}:latest"},
            {"step": "verify", "refs": [f"{a}:1.2.3", f"{a}:latest", f"{b}:1.2.3", f"{b}:latest"]},
        ],
        "platforms": ["linux/amd64", "linux/arm64"],
        "index_format": "docker",
        "local_images": {"linux/amd64": "myapp:1.2.3-linux-amd64",
                         "linux/arm64": "myapp:1.2.3-linux-arm64"},
    }
    local = make_plan(full_config(("linux/amd64", "linux/arm64")), result(["1.2.3"]), [reg("a")],
                      build=False)
    assert local.steps()[:2] == [
        {"step": "use-local", "platform": "linux/amd64", "image": "myapp:1.2.3-linux-amd64"},
        {"step": "use-local", "platform": "linux/arm64", "image": "myapp:1.2.3-linux-arm64"}]


def test_plan_to_dict_single_platform_has_no_index_keys():
    data = make_plan(full_config(("linux/arm64",)), result(["1.0.0"]), [reg("a")]).to_dict()
    assert data["platforms"] == ["linux/arm64"]
    assert "index_format" not in data and "local_images" not in data
    assert data["steps"][0]["platform"] == "linux/arm64"
    assert data["latest"] is True and data["tags"] == ["1.0.0"] and data["version"] == "1.0.0"


def test_plan_values_are_frozen():
    import dataclasses
    plan = make_plan(config(), result(["1.0.0"]), [reg("a")])
    for value in (plan, plan.build, plan.targets[0]):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.extra = 1


def test_plan_and_build_step_defaults():
    from pipeline.model.plan import BuildStep, Plan
    step = BuildStep(context="/src", dockerfile="Dockerfile", target=None, build_args={}, local_ref="a:1")
    assert (step.builder, step.secrets, step.cache_from, step.cache_to) == ("auto", (), (), ())
    plan = Plan(version="1", tags=("1",), latest=False, local_ref="a:1", latest_tag=None, build=None)
    assert (plan.targets, plan.latest_if_highest, plan.platforms, plan.index_format) == ((), False, (), "oci")


def test_format_plan_multi_platform_build_without_target():
    cfg = full_config(("linux/amd64", "linux/arm64"))
    lines = format_plan(make_plan(cfg, result(["1.0.0"]), [reg("a")])).split("\n")
    assert lines[1] == "1. build 2 platforms from /src/Dockerfile, one build each"
