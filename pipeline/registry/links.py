"""RFC 8288 `Link` headers, as registries use them to paginate tag lists and the catalog.

    parse_link_header('</v2/_catalog?last=b&n=2>; rel="next"') -> {"next": "/v2/_catalog?last=b&n=2"}
    next_url(resp_url, link_header) -> absolute URL of the next page, or None
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

_LINK = re.compile(r'\s*<([^>]*)>\s*((?:;\s*[^;,]+=\s*(?:"[^"]*"|[^;,]*)\s*)*)')
_PARAM = re.compile(r';\s*([^;=\s]+)\s*=\s*(?:"([^"]*)"|([^;,\s]*))')


def parse_link_header(value: str | None) -> dict[str, str]:
    """{rel: url} for every link; a `rel` with several values ("next last") maps each one."""
    links: dict[str, str] = {}
    if not value:
        return links
    pos = 0
    while pos < len(value):
        m = _LINK.match(value, pos)
        if not m:
            break
        url, params = m.group(1).strip(), m.group(2) or ""
        for p in _PARAM.finditer(params):
            if p.group(1).lower() == "rel":
                rel = p.group(2) if p.group(2) is not None else p.group(3)
                for name in rel.lower().split():
                    links.setdefault(name, url)
        pos = m.end()
        comma = value.find(",", pos)
        if comma < 0:
            break
        pos = comma + 1
    return links


def next_url(request_url: str, header: str | None) -> str | None:
    """The absolute URL of rel="next" resolved against the request URL, None when there is none.

    Only links on the same origin (scheme and host) are followed: a registry must not
    be able to send our credentials to another host through pagination.
    """
    target = parse_link_header(header).get("next")
    if not target:
        return None
    absolute = urljoin(request_url, target)
    a, b = urlsplit(request_url), urlsplit(absolute)
    if (a.scheme, a.netloc.lower()) != (b.scheme, b.netloc.lower()):
        raise ValueError(f"pagination link points to another host: {b.scheme}://{b.netloc}")
    return absolute
