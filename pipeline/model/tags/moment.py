"""moment.js `format()` for `{{date 'FMT'}}` / `{{commit_date 'FMT'}}` (English locale).

metadata-action formats dates with moment-timezone, so the same format string must give the same
text here: `YYYYMMDD-HHmmss`, `[literal]`, `\\X` escapes, `L`/`LL` long formats, ISO and locale
weeks.  Era tokens (`N`, `y`) are refused instead of being guessed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

_LONG_TOKENS = re.compile(r"(\[[^\[]*\])|(\\)?(LTS|LT|LL?L?L?|l{1,4})")
_TOKENS = re.compile(
    r"(\[[^\[]*\])|(\\)?([Hh]mm(ss)?|Mo|MM?M?M?|Do|DDDo|DD?D?D?|ddd?d?|do?|w[o|w]?|W[o|W]?|Qo?|"
    r"N{1,5}|YYYYYY|YYYYY|YYYY|YY|y{2,4}|yo?|gg(ggg?)?|GG(GGG?)?|e|E|a|A|hh?|HH?|kk?|mm?|ss?|"
    r"S{1,9}|x|X|zz?|ZZ?|.)"
)
_LONG_FORMATS = {
    "LTS": "h:mm:ss A", "LT": "h:mm A", "L": "MM/DD/YYYY", "LL": "MMMM D, YYYY",
    "LLL": "MMMM D, YYYY h:mm A", "LLLL": "dddd, MMMM D, YYYY h:mm A",
    "l": "M/D/YYYY", "ll": "MMM D, YYYY", "lll": "MMM D, YYYY h:mm A",
    "llll": "ddd, MMM D, YYYY h:mm A",
}
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
DEFAULT_FORMAT = "YYYY-MM-DDTHH:mm:ssZ"
DEFAULT_FORMAT_UTC = "YYYY-MM-DDTHH:mm:ss[Z]"


class MomentFormatError(ValueError):
    pass


def _fill(n: int, width: int, force_sign: bool = False) -> str:
    sign = "-" if n < 0 else ("+" if force_sign else "")
    return sign + str(abs(n)).zfill(width)


def _ordinal(n: int) -> str:
    b = n % 10
    if (n % 100) // 10 == 1:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(b, "th")
    return f"{n}{suffix}"


def _js_day(d: date) -> int:
    return d.isoweekday() % 7  # Sunday = 0, like Date.getUTCDay()


def _first_week_offset(year: int, dow: int, doy: int) -> int:
    fwd = 7 + dow - doy
    fwdlw = (7 + _js_day(date(year, 1, 1) + timedelta(days=fwd - 1)) - dow) % 7
    return -fwdlw + fwd - 1


def _weeks_in_year(year: int, dow: int, doy: int) -> int:
    days = (date(year + 1, 1, 1) - date(year, 1, 1)).days
    return (days - _first_week_offset(year, dow, doy) + _first_week_offset(year + 1, dow, doy)) // 7


def _week_of_year(d: date, dow: int, doy: int) -> tuple[int, int]:
    """(week, week-year) with moment's algorithm: ISO is dow=1, doy=4; English is dow=0, doy=6."""
    day_of_year = d.timetuple().tm_yday
    week = (day_of_year - _first_week_offset(d.year, dow, doy) - 1) // 7 + 1
    if week < 1:
        return week + _weeks_in_year(d.year - 1, dow, doy), d.year - 1
    if week > _weeks_in_year(d.year, dow, doy):
        return week - _weeks_in_year(d.year, dow, doy), d.year + 1
    return week, d.year


def _offset(dt: datetime, sep: str) -> str:
    off = dt.utcoffset() or timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{sep}{minutes % 60:02d}"


def _token(tok: str, dt: datetime) -> str | None:
    ms = dt.microsecond // 1000
    h = dt.hour
    simple = {
        "M": lambda: str(dt.month), "MM": lambda: _fill(dt.month, 2),
        "MMM": lambda: _MONTHS[dt.month - 1][:3], "MMMM": lambda: _MONTHS[dt.month - 1],
        "Mo": lambda: _ordinal(dt.month),
        "D": lambda: str(dt.day), "DD": lambda: _fill(dt.day, 2), "Do": lambda: _ordinal(dt.day),
        "DDD": lambda: str(dt.timetuple().tm_yday), "DDDD": lambda: _fill(dt.timetuple().tm_yday, 3),
        "DDDo": lambda: _ordinal(dt.timetuple().tm_yday),
        "d": lambda: str(_js_day(dt)), "do": lambda: _ordinal(_js_day(dt)),
        "dd": lambda: _DAYS[_js_day(dt)][:2], "ddd": lambda: _DAYS[_js_day(dt)][:3],
        "dddd": lambda: _DAYS[_js_day(dt)],
        "e": lambda: str(_js_day(dt)), "E": lambda: str(dt.isoweekday()),
        "w": lambda: str(_week_of_year(dt, 0, 6)[0]), "ww": lambda: _fill(_week_of_year(dt, 0, 6)[0], 2),
        "wo": lambda: _ordinal(_week_of_year(dt, 0, 6)[0]),
        "W": lambda: str(_week_of_year(dt, 1, 4)[0]), "WW": lambda: _fill(_week_of_year(dt, 1, 4)[0], 2),
        "Wo": lambda: _ordinal(_week_of_year(dt, 1, 4)[0]),
        "gg": lambda: _fill(_week_of_year(dt, 0, 6)[1] % 100, 2),
        "gggg": lambda: _fill(_week_of_year(dt, 0, 6)[1], 4),
        "ggggg": lambda: _fill(_week_of_year(dt, 0, 6)[1], 5),
        "GG": lambda: _fill(_week_of_year(dt, 1, 4)[1] % 100, 2),
        "GGGG": lambda: _fill(_week_of_year(dt, 1, 4)[1], 4),
        "GGGGG": lambda: _fill(_week_of_year(dt, 1, 4)[1], 5),
        "Q": lambda: str((dt.month - 1) // 3 + 1), "Qo": lambda: _ordinal((dt.month - 1) // 3 + 1),
        "Y": lambda: _fill(dt.year, 4) if dt.year <= 9999 else f"+{dt.year}",
        "YY": lambda: _fill(dt.year % 100, 2), "YYYY": lambda: _fill(dt.year, 4),
        "YYYYY": lambda: _fill(dt.year, 5), "YYYYYY": lambda: _fill(dt.year, 6, True),
        "a": lambda: "pm" if h > 11 else "am", "A": lambda: "PM" if h > 11 else "AM",
        "H": lambda: str(h), "HH": lambda: _fill(h, 2),
        "h": lambda: str(h % 12 or 12), "hh": lambda: _fill(h % 12 or 12, 2),
        "k": lambda: str(h or 24), "kk": lambda: _fill(h or 24, 2),
        "hmm": lambda: f"{h % 12 or 12}{dt.minute:02d}",
        "hmmss": lambda: f"{h % 12 or 12}{dt.minute:02d}{dt.second:02d}",
        "Hmm": lambda: f"{h}{dt.minute:02d}", "Hmmss": lambda: f"{h}{dt.minute:02d}{dt.second:02d}",
        "m": lambda: str(dt.minute), "mm": lambda: _fill(dt.minute, 2),
        "s": lambda: str(dt.second), "ss": lambda: _fill(dt.second, 2),
        "X": lambda: str(int(dt.timestamp() // 1)),
        "x": lambda: str(int(dt.timestamp() * 1000 // 1)),
        "z": lambda: dt.tzname() or "", "zz": lambda: dt.tzname() or "",
        "Z": lambda: _offset(dt, ":"), "ZZ": lambda: _offset(dt, ""),
    }
    if tok in simple:
        return simple[tok]()
    if re.fullmatch(r"S{1,9}", tok):
        n = len(tok)
        if n <= 3:
            return _fill(ms // 10 ** (3 - n), n)
        return _fill(ms * 10 ** (n - 3), n)
    if tok.startswith(("N", "y")):
        raise MomentFormatError(f"date format token {tok!r} (era) is not supported")
    return None


def _expand_long(fmt: str) -> str:
    for _ in range(6):
        if not _LONG_TOKENS.search(fmt):
            break
        fmt = _LONG_TOKENS.sub(lambda m: _LONG_FORMATS.get(m.group(0), m.group(0)), fmt)
    return fmt


def format_moment(dt: datetime, fmt: str | None) -> str:
    """`moment(dt).format(fmt)`; an empty or missing format gives moment's ISO default."""
    if not fmt:
        fmt = DEFAULT_FORMAT_UTC if not dt.utcoffset() else DEFAULT_FORMAT
    out = []
    for m in _TOKENS.finditer(_expand_long(fmt)):
        whole = m.group(0)
        if m.group(1):  # [literal]
            out.append(whole[1:-1] if whole.endswith("]") else whole[1:])
            continue
        if m.group(2):  # \X escape
            out.append(whole.replace("\\", ""))
            continue
        value = _token(whole, dt)
        out.append(whole if value is None else value)
    return "".join(out)
