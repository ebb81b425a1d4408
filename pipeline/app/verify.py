"""Step 4 of a release: ask each registry (not the engine) what every reference we wrote
resolves to; and `finish`, steps 3 and 4 after step 2."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pipeline.app import floating
from pipeline.app.report import RefResult, Report
from pipeline.app.state import RunState
from pipeline.model.plan import Target, floating_moves
from pipeline.model.status import Status
from pipeline.registry.copy import tag_image
from pipeline.registry.errors import RegistryAPIError


def finish(run: RunState, report: Report, source: Target | None, targets: list[Target]) -> Report:
    """Steps 3 and 4 once step 2 is done; `source` None (step 2 failed): the floating tags
    are reported as skipped, none is moved."""
    if source is None:
        report.results.extend(RefResult(t.registry, t.ref(tag)) for t in targets for tag in t.floating)
        return report
    floating.distribute(run, report, source, targets)
    verify(run, report)
    return report


def verify(run: RunState, report: Report) -> None:
    """Ask each registry what every pushed reference resolves to.

    Another release running at the same time may have moved a floating tag since: onto a
    higher version, that is the rule (a note, not a failure); onto a lower one, it is put
    back on this version once (floating tags only move forward)."""
    targets = {t.registry: t for t in run.plan.targets}
    moved_on: list[RefResult] = []

    def check(res: RefResult, repair: bool = True) -> None:
        target = targets[res.registry]
        tag = res.ref.rsplit(":", 1)[1]
        try:
            info = run.client(res.registry).head_manifest(target.repository, tag)
        except RegistryAPIError as exc:
            res.status, res.error = Status.FAILED, f"could not verify: {exc}"
            return
        if info is None:
            res.status, res.error = Status.FAILED, "not found on the registry after the push"
        elif info.digest == report.digest:
            res.digest = info.digest
        elif tag in target.floating and not run.force:
            held = floating.version_at(run, target, info.digest)
            if held and not floating_moves(run.plan.version, held):
                moved_on.append(res)
                report.notes.append(f"[{res.registry}] {tag} moved on to {held} (a newer "
                                    f"release) while this one ran")
            elif repair and _put_back(run, target, tag, report):
                check(res, repair=False)
            else:
                res.status, res.error = Status.FAILED, (f"registry holds {info.digest}, expected "
                                                        f"{report.digest}")
        else:
            res.status, res.error = Status.FAILED, (f"registry holds {info.digest}, expected "
                                                    f"{report.digest}")

    # "already there" was just read from the registry itself; what we wrote is re-read here.
    with ThreadPoolExecutor(max_workers=run.jobs) as pool:
        list(pool.map(check, [r for r in report.results if r.status == Status.PUSHED]))
    gone = {id(r) for r in moved_on}
    report.results = [r for r in report.results if id(r) not in gone]


def _put_back(run: RunState, target: Target, tag: str, report: Report) -> bool:
    """A floating tag an older release moved back while this one ran: put it on this
    version again."""
    try:
        manifest = run.manifest(target, report.digest)
        tag_image(run.client(target.registry), target.repository, manifest, [tag])
    except RegistryAPIError:
        return False
    report.notes.append(f"[{target.registry}] {tag} was moved back by an older release "
                        f"running at the same time; put back on {run.plan.version}")
    return True
