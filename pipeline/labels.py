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
