"""What happened to a reference, a blob or a registry in a run: one closed set of words.

The values are the words reports print (the JSON `status`, the summary table, the GitHub
step summary, progress lines). A `Status` is a `str`: it prints, formats, compares and
serialises (json.dumps) exactly as its value does, so output is the same as with plain
strings.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    # a reference (tag or digest) of a release, and a blob or manifest on its way there
    PUSHED = "pushed"               # written by this run
    ALREADY = "already there"       # the registry held it already: nothing written
    FAILED = "failed"
    SKIPPED = "skipped"             # not attempted (an earlier step failed, a refusal before)
    QUEUED = "queued"               # a blob ready to upload (progress views only)
    # a blob copied between registries (pipeline/registry/copy.py)
    MOUNTED = "mounted"             # mounted from another repository of the same registry
    COPIED = "copied"               # streamed from the source registry
    # other commands
    OK = "ok"                       # `release login`: the credentials were accepted
    DELETED = "deleted"             # `release prune`: the manifest was deleted


# A reference with one of these holds the released image. Plain strings match too
# ("pushed" in HELD): a Status hashes and compares as its value.
HELD = frozenset({Status.PUSHED, Status.ALREADY})
