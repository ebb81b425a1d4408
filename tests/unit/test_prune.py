import pytest

from pipeline.model.prune import plan_prune
from pipeline.model.tags.semver import parse_semver, precedence


def d(n):
    return f"sha256:{n:064x}"


def test_semver_order_not_string_order():
    tags = ["1.10.0", "1.9.0", "1.2.0", "1.10.0-rc.1", "2.0.0-alpha", "2.0.0-alpha.1", "2.0.0"]
    ordered = sorted(tags, key=lambda t: precedence(parse_semver(t)))
    assert ordered == ["1.2.0", "1.9.0", "1.10.0-rc.1", "1.10.0", "2.0.0-alpha", "2.0.0-alpha.1", "2.0.0"]


def test_keeps_the_n_highest_versions_and_every_floating_tag():
    tags = {"1.2.0": d(1), "1.9.0": d(2), "1.10.0": d(3), "1.10": d(3), "1": d(3), "latest": d(3),
            "main": d(9)}
    plan = plan_prune(tags, keep=1)
    assert plan.keep == ("1.10.0",)
    assert plan.deleted_tags == ["1.2.0", "1.9.0"]
    assert {x.digest for x in plan.deletions} == {d(1), d(2)}
    assert "main" in plan.protected and "latest" in plan.protected


def test_never_deletes_a_digest_that_a_kept_tag_shares():
    # 1.0.0 and 1.0.1 were the same build; 1.0.1 is kept, so 1.0.0's manifest must stay.
    tags = {"1.0.0": d(1), "1.0.1": d(1), "0.9.0": d(2), "0.9": d(2)}
    plan = plan_prune(tags, keep=1)
    assert plan.keep == ("1.0.1",)
    assert plan.deleted_tags == []          # 0.9.0 shares its digest with the floating tag 0.9
    assert set(plan.protected) >= {"1.0.0", "0.9.0", "0.9"}
    assert plan.reasons["1.0.0"] == "shares its digest with kept tag 1.0.1"
    assert plan.reasons["0.9.0"] == "shares its digest with kept tag 0.9"
    assert plan.reasons["0.9"] == "not a version"


def test_candidates_sharing_one_digest_are_deleted_together():
    tags = {"3.0.0": d(3), "2.0.0": d(2), "2.0.0-rc.1": d(2), "1.0.0": d(1)}
    plan = plan_prune(tags, keep=1)
    by = {x.digest: x.tags for x in plan.deletions}
    assert by == {d(2): ("2.0.0-rc.1", "2.0.0"), d(1): ("1.0.0",)}


def test_match_limits_the_candidates():
    tags = {"v1.0.0": d(1), "v2.0.0": d(2), "1.0.0-nightly.1": d(3)}
    plan = plan_prune(tags, keep=0, match=r"^v")
    assert sorted(plan.deleted_tags) == ["v1.0.0", "v2.0.0"]
    assert "1.0.0-nightly.1" in plan.protected
    assert plan.reasons == {"1.0.0-nightly.1": "does not match --match"}


def test_keep_zero_and_negative():
    assert plan_prune({"1.0.0": d(1)}, keep=0).deleted_tags == ["1.0.0"]
    with pytest.raises(ValueError, match="keep must be >= 0"):
        plan_prune({}, keep=-1)


def test_prerelease_order_decides_what_is_kept():
    """rc.10 is above rc.2 (numbers, not strings), and `1` below `alpha` (SemVer 2.0.0 §11)."""
    tags = {"1.0.0-rc.2": d(2), "1.0.0-rc.10": d(10), "1.0.0-rc.9": d(9)}
    assert plan_prune(tags, keep=1).keep == ("1.0.0-rc.10",)
    assert plan_prune(tags, keep=2).keep == ("1.0.0-rc.10", "1.0.0-rc.9")
    plan = plan_prune({"1.0.0-1": d(1), "1.0.0-alpha": d(2)}, keep=1)
    assert plan.keep == ("1.0.0-alpha",) and plan.deleted_tags == ["1.0.0-1"]


def test_plan_values_are_frozen():
    import dataclasses

    from pipeline.model.prune import Deletion, ManifestLinks, PrunePlan
    for value in (Deletion(d(1), ("1.0.0",)), PrunePlan(keep=(), protected=()), ManifestLinks()):
        with pytest.raises(dataclasses.FrozenInstanceError):
            value.extra = 1
    assert hash(Deletion(d(1), ("1.0.0",))) == hash(Deletion(d(1), ("1.0.0",)))


# -- closure over references (index children, subjects) ----------------------------------------

def test_children_of_a_kept_index_are_kept_even_when_their_tags_look_old():
    """The data loss of issue 12: 2.0.0 is an index of 2.0.0-amd64 and 2.0.0-arm64, whose tags
    are prereleases below 2.0.0 and so were deleted, breaking 2.0.0."""
    from pipeline.model.prune import ManifestLinks
    tags = {"2.0.0": d(20), "2.0.0-amd64": d(21), "2.0.0-arm64": d(22), "1.0.0": d(10)}
    links = ManifestLinks(children={d(20): (d(21), d(22))})
    plan = plan_prune(tags, keep=1, links=links)
    assert plan.keep == ("2.0.0",)
    assert plan.deleted_tags == ["1.0.0"]
    assert plan.reasons["2.0.0-amd64"] == "in the index of kept tag 2.0.0"
    assert plan.reasons["2.0.0-arm64"] == "in the index of kept tag 2.0.0"
    assert set(plan.protected) == {"2.0.0-amd64", "2.0.0-arm64"}
    # without the links (the old behaviour) both children would go
    assert set(plan_prune(tags, keep=1).deleted_tags) == {"1.0.0", "2.0.0-amd64", "2.0.0-arm64"}


def test_the_closure_runs_to_a_fixed_point():
    from pipeline.model.prune import ManifestLinks
    # latest -> index A -> index B -> manifest C (tagged 0.1.0); D signs C (subject); E signs D
    tags = {"latest": d(1), "0.3.0": d(2), "0.1.0": d(3), "0.0.1": d(4), "0.0.2": d(5), "0.0.3": d(6)}
    links = ManifestLinks(children={d(1): (d(2),), d(2): (d(3),)}, subjects={d(4): d(3), d(5): d(4)})
    plan = plan_prune(tags, keep=0, links=links)
    assert plan.deleted_tags == ["0.0.3"]
    assert plan.reasons["0.3.0"] == "in the index of kept tag latest"
    assert plan.reasons["0.1.0"] == "in the index of kept tag latest"
    assert plan.reasons["0.0.1"] == "refers to kept tag latest (subject)"
    assert plan.reasons["0.0.2"] == "refers to kept tag latest (subject)"


def test_a_deleted_index_does_not_protect_its_children_nor_does_a_referrer_protect_its_subject():
    from pipeline.model.prune import ManifestLinks
    tags = {"3.0.0": d(30), "1.0.0": d(10), "1.0.0-amd64": d(11), "0.5.0": d(5)}
    # 1.0.0 (deleted) lists 1.0.0-amd64; 0.5.0 is a signature OF the deleted 1.0.0
    links = ManifestLinks(children={d(10): (d(11),)}, subjects={d(5): d(10)})
    plan = plan_prune(tags, keep=1, links=links)
    assert set(plan.deleted_tags) == {"1.0.0", "1.0.0-amd64", "0.5.0"}


def test_plan_json_carries_the_reasons():
    from pipeline.model.prune import ManifestLinks
    tags = {"2.0.0": d(20), "2.0.0-amd64": d(21), "latest": d(20), "1.0.0": d(10)}
    data = plan_prune(tags, keep=1, links=ManifestLinks(children={d(20): (d(21),)})).to_dict()
    assert data == {"keep": ["2.0.0"], "protected": ["latest", "2.0.0-amd64"],
                    "reasons": {"latest": "not a version",
                                "2.0.0-amd64": "in the index of kept tag 2.0.0"},
                    "delete": [{"digest": d(10), "tags": ["1.0.0"]}]}
