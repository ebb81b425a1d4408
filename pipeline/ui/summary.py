"""The end-of-run summary table (plain text, so it reads the same in a terminal and a CI log)."""

from __future__ import annotations

from pipeline.ui.redact import redact


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def format_report(report, verb: str = "released") -> str:
    rows = [[r.registry, r.ref, (r.digest or "-")[:19], r.status, f"{r.seconds:.1f}s"]
            for r in report.results]
    text = table(rows, ["REGISTRY", "REFERENCE", "DIGEST", "STATUS", "TIME"])
    problems = [f"  {r.registry}: {r.ref}: {r.error}" for r in report.results if r.error]
    problems += [f"  {e}" for e in report.errors]
    for note in getattr(report, "notes", []):
        text += f"\nnote: {note}"
    if report.ok:
        text += f"\n\n{verb} {report.plan.version}: {len(report.results)} references, digest {report.digest}"
    else:
        text += "\n\nrelease incomplete:\n" + "\n".join(problems)
        text += "\n  re-run the same command to finish the release once the cause is fixed"
    return redact(text)
