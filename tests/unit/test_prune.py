import pytest

from pipeline.prune import plan_prune
from pipeline.tags.semver import parse_semver, precedence


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


def test_keep_zero_and_negative():
    assert plan_prune({"1.0.0": d(1)}, keep=0).deleted_tags == ["1.0.0"]
    with pytest.raises(ValueError):
        plan_prune({}, keep=-1)
