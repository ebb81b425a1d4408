"""OCI image labels added to every build, under the user's own labels."""

from __future__ import annotations

from datetime import datetime, timezone

PREFIX = "org.opencontainers.image."


def oci_labels(*, version: str, revision: str | None, source: str | None,
               created: datetime | str | None = None, user: dict[str, str] | None = None) -> dict[str, str]:
    """Generated labels first, the user's labels merged over them (the user wins on a clash)."""
    if created is None:
        created = datetime.now(timezone.utc)
    if isinstance(created, datetime):
        created = created.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    labels = {PREFIX + "version": version, PREFIX + "created": created}
    if revision:
        labels[PREFIX + "revision"] = revision
    if source:
        labels[PREFIX + "source"] = source
    labels.update(user or {})
    return dict(sorted(labels.items()))


def reusable_created(existing_labels, *, version: str, revision: str | None) -> str | None:
    """The `created` label of an earlier build of the same version and commit, if any.

    With the same label values the build cache gives the same image, so a rebuild (a re-run
    of a release, `release ci build` on an unchanged tree) gives the same image id and digest
    instead of a new image that differs only in its timestamp. `existing_labels` are the
    labels of each candidate local image (None for one that is not there).
    """
    for labels in existing_labels:
        labels = labels or {}
        if (labels.get(PREFIX + "version") == version and labels.get(PREFIX + "revision") == revision
                and labels.get(PREFIX + "created")):
            return labels[PREFIX + "created"]
    return None
