"""Tag derivation compatible with docker/metadata-action (pure logic, no I/O).

Public API (implemented in the submodules, re-exported here):

    parse_tag_rule(line: str, index: int = 0) -> TagRule        # raises TagRuleError(index=index)
    parse_flavor(lines: list[str]) -> Flavor                    # raises TagRuleError(section="flavor")
    DEFAULT_TAG_LINES: list[str]                                # the three semver lines
    DEFAULT_FLAVOR_LINES: list[str]                             # ["latest=auto"]
    TagContext(ref, sha, event, default_branch, now, commit_date)
    context_for_version(version, sha=None, default_branch=None) -> TagContext   # VERSION -> refs/tags/VERSION
    resolve_context(version=None, ref=None, sha=None, event=None, default_branch=None,
                    env=os.environ, git=None) -> TagContext      # flags, then CI variables, then git
    derive_tags(rules, flavor, ctx) -> TagResult                # raises TagRuleError / UsageError
    TagResult(version: str | None, tags: list[str], latest: bool)
"""

from pipeline.model.tags.context import (
    TagContext,
    context_for_version,
    resolve_context,
    run_git,
)
from pipeline.model.tags.derive import (
    TagResult,
    derive_tags,
    is_prerelease,
    is_valid_tag,
    sanitize_tag,
    validate_release_version,
)
from pipeline.model.tags.rules import (
    DEFAULT_FLAVOR_LINES,
    DEFAULT_TAG_LINES,
    Flavor,
    TagRule,
    parse_flavor,
    parse_tag_rule,
    parse_tag_rules,
)

__all__ = [
    "DEFAULT_FLAVOR_LINES", "DEFAULT_TAG_LINES", "Flavor", "TagContext", "TagResult", "TagRule",
    "context_for_version", "derive_tags", "is_prerelease", "is_valid_tag", "parse_flavor",
    "parse_tag_rule", "parse_tag_rules", "resolve_context", "run_git", "sanitize_tag",
    "validate_release_version",
]
