"""What a release run reports: one RefResult per reference, and the Report around them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.model.plan import Plan
from pipeline.model.status import HELD, Status


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

    @property
    def ok(self) -> bool:
        return not self.errors and all(r.status in HELD for r in self.results)

    def to_dict(self) -> dict:
        data = {"ok": self.ok, "version": self.plan.version, "digest": self.digest,
                "tags": list(self.plan.tags), "latest": self.plan.latest, "image_id": self.image_id,
                "results": [r.to_dict() for r in self.results], "errors": list(self.errors),
                "notes": list(self.notes)}
        if self.platforms:
            data["media_type"] = self.media_type
            data["platforms"] = list(self.platforms)
        return data
