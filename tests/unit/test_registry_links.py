"""Link header parsing for tag/catalog pagination."""

from __future__ import annotations

import pytest

from pipeline.registry.links import next_url, parse_link_header


@pytest.mark.parametrize("header, expected", [
    ('</v2/_catalog?last=b&n=2>; rel="next"', {"next": "/v2/_catalog?last=b&n=2"}),
    ("</v2/x/tags/list?n=2&last=b>; rel=next", {"next": "/v2/x/tags/list?n=2&last=b"}),
    ('<https://r.example/a?x=1,2>; rel="next"; type="application/json"',
     {"next": "https://r.example/a?x=1,2"}),                     # comma inside <...>
    ('<https://r/p1>; rel="prev", <https://r/p3>; rel="next"', {"prev": "https://r/p1", "next": "https://r/p3"}),
    ('<https://r/p3>; REL="Next Last"', {"next": "https://r/p3", "last": "https://r/p3"}),
    ('<https://r/p3>; title="a, b"; rel="next"', {"next": "https://r/p3"}),
    ("", {}), (None, {}), ("garbage", {}),
])
def test_parse_link_header(header, expected):
    assert parse_link_header(header) == expected


def test_next_url_is_resolved_and_stays_on_the_registry():
    base = "https://reg.example:5000/v2/x/tags/list?n=2"
    assert next_url(base, '</v2/x/tags/list?n=2&last=b>; rel="next"') == \
        "https://reg.example:5000/v2/x/tags/list?n=2&last=b"
    assert next_url(base, '<https://REG.example:5000/v2/x/tags/list?last=c>; rel="next"') == \
        "https://REG.example:5000/v2/x/tags/list?last=c"
    assert next_url(base, '</v2/x/tags/list?last=b>; rel="prev"') is None
    assert next_url(base, None) is None
    with pytest.raises(ValueError, match="another host"):
        next_url(base, '<https://evil.example/v2/x/tags/list>; rel="next"')
