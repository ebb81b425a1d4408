"""The end-of-run summary table (plain text, so it reads the same in a terminal and a CI log)."""

from __future__ import annotations

from pipeline.ui.redact import redact


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def human_bytes(n: int) -> str:
    """61234567 -> '61.2 MB' (decimal units, as registries and `docker push` count)."""
    if n < 1000:
        return f"{n} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 999.95 or unit == "TB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def describe_sent(counts: dict) -> str:
    """One registry's traffic (Report.sent()): '3 blobs sent (61.2 MB), 2 already there'."""
    if counts.get("bytes_sent") is None:
        return "not measured (pushed by the engine)"
    n = counts["blobs_sent"]
    text = (f"{n} blob{'' if n == 1 else 's'} sent ({human_bytes(counts['bytes_sent'])}), "
            f"{counts['blobs_present']} already there")
    if counts.get("blobs_mounted"):
        text += f", {counts['blobs_mounted']} mounted"
    return text


def format_sent(sent: dict[str, dict]) -> str:
    """The lines under the table: what each registry was sent (blob bytes, not manifests)."""
    if not sent:
        return ""
    width = max(len(name) for name in sent)
    return "\nsent:\n" + "\n".join(f"  {name.ljust(width)}  {describe_sent(counts)}"
                                    for name, counts in sent.items())


def format_report(report, verb: str = "released") -> str:
    rows = [[r.registry, r.ref, (r.digest or "-")[:19], r.status, f"{r.seconds:.1f}s"]
            for r in report.results]
    text = table(rows, ["REGISTRY", "REFERENCE", "DIGEST", "STATUS", "TIME"])
    sent = report.sent() if hasattr(report, "sent") else {}
    if sent:
        text += "\n" + format_sent(sent)
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
