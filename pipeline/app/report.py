"""What a release run reports: one RefResult per reference, and the Report around them,
with what each registry was sent (`transfers`: registry/upload.py's Tally per registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.model.plan import Plan
from pipeline.model.status import HELD, Status
from pipeline.registry.upload import Tally

# A registry the engine pushed to (`docker push`): its traffic is not measured.
NOT_MEASURED = {"bytes_sent": None, "blobs_sent": None, "blobs_present": None,
                "blobs_mounted": None}


@dataclass
class RefResult:
    registry: str
    ref: str
    status: Status = Status.SKIPPED
    digest: str | None = None
    seconds: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict:
        return {"registry": self.registry, "ref": self.ref, "status": self.status, "digest": self.digest,
                "seconds": round(self.seconds, 3), **({"error": self.error} if self.error else {})}


@dataclass
class Report:
    plan: Plan
    results: list[RefResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    digest: str | None = None
    image_id: str | None = None
    platforms: list[dict] = field(default_factory=list)   # several platforms: one entry each
    media_type: str | None = None                         # of the index, with several platforms
    # registry -> its blob traffic in this run (step 2); None: pushed by the engine, not measured
    transfers: dict[str, Tally | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.status in HELD for r in self.results)

    def sent(self) -> dict[str, dict]:
        """Registry -> {bytes_sent, blobs_sent, blobs_present, blobs_mounted} (all None when
        not measured), for the registries this report has results for, in their order."""
        names = dict.fromkeys(r.registry for r in self.results)
        return {name: dict(NOT_MEASURED) if self.transfers[name] is None else self.transfers[name].to_dict()
                for name in names if name in self.transfers}

    def to_dict(self) -> dict:
        data = {"ok": self.ok, "version": self.plan.version, "digest": self.digest,
                "tags": list(self.plan.tags), "latest": self.plan.latest, "image_id": self.image_id,
                "results": [r.to_dict() for r in self.results], "errors": list(self.errors),
                "notes": list(self.notes), "registries": self.sent()}
        if self.platforms:
            data["media_type"] = self.media_type
            data["platforms"] = list(self.platforms)
        return data
