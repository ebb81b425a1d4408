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
