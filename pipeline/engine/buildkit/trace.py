"""BuildKit progress from the Engine API: `moby.buildkit.trace` messages, decoded.

With `version=2`, POST /build streams JSON messages; BuildKit's progress comes as
`{"id": "moby.buildkit.trace", "aux": "<base64>"}` whose payload is a protobuf
`moby.buildkit.v1.StatusResponse`. We read the protobuf wire format ourselves (no generated
code, no dependency); only these fields are read, everything else is skipped:

    StatusResponse: 1 vertexes (Vertex, repeated), 2 statuses (VertexStatus, repeated),
                    3 logs (VertexLog, repeated), 4 warnings (VertexWarning, repeated)
    Vertex:         1 digest, 2 inputs (repeated), 3 name, 4 cached, 5 started, 6 completed,
                    7 error                                      (8 progressGroup: skipped)
    VertexStatus:   1 ID, 2 vertex, 3 name, 4 current, 5 total, 6 timestamp, 7 started,
                    8 completed
    VertexLog:      1 vertex, 2 timestamp, 3 stream, 4 msg (bytes)
    VertexWarning:  1 vertex, 2 level, 3 short (bytes), 4 detail (bytes, repeated), 5 url
                                                     (6 info, 7 ranges: skipped)
    Timestamp:      1 seconds (int64), 2 nanos (int32)  -> float seconds since the epoch

Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32; unknown fields of any of
these are skipped. Groups (3, 4), field number 0, a known field with the wrong wire type, a
varint longer than 10 bytes or a length past the end raise `TraceDecodeError`. A scalar
field seen twice keeps the last value (protobuf's rule); absent fields keep their defaults
(timestamps: None).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


class TraceDecodeError(ValueError):
    """The payload is not a well-formed StatusResponse (truncated or garbled)."""


@dataclass(frozen=True)
class Vertex:
    digest: str = ""
    inputs: tuple[str, ...] = ()
    name: str = ""
    cached: bool = False
    started: float | None = None
    completed: float | None = None
    error: str = ""


@dataclass(frozen=True)
class VertexStatus:
    id: str = ""
    vertex: str = ""
    name: str = ""
    current: int = 0
    total: int = 0
    timestamp: float | None = None
    started: float | None = None
    completed: float | None = None


@dataclass(frozen=True)
class VertexLog:
    vertex: str = ""
    timestamp: float | None = None
    stream: int = 0
    msg: bytes = b""


@dataclass(frozen=True)
class VertexWarning:
    vertex: str = ""
    level: int = 0
    short: bytes = b""
    detail: tuple[bytes, ...] = ()
    url: str = ""


@dataclass(frozen=True)
class StatusResponse:
    vertexes: tuple[Vertex, ...] = ()
    statuses: tuple[VertexStatus, ...] = ()
    logs: tuple[VertexLog, ...] = ()
    warnings: tuple[VertexWarning, ...] = ()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        value |= (data[i] & 0x7F) << shift
        if data[i] < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i + 1
        shift += 7
    raise TraceDecodeError(f"truncated or overlong varint at byte {pos}")


def _fields(data: bytes):
    """(field number, wire type, value): an int for wire types 0/1/5, bytes for 2."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise TraceDecodeError(f"field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise TraceDecodeError(f"truncated fixed{size * 8} field {number}")
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise TraceDecodeError(f"field {number}: length {size} runs past the end")
            value, pos = bytes(data[pos:pos + size]), pos + size
        else:
            raise TraceDecodeError(f"unsupported wire type {wire} (field {number})")
        yield number, wire, value


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _timestamp(data: bytes) -> float:
    seconds = nanos = 0
    for number, wire, value in _fields(data):
        if number in (1, 2) and wire != 0:
            raise TraceDecodeError(f"Timestamp field {number} has wire type {wire}")
        if number == 1:
            seconds = _int64(value)
        elif number == 2:
            nanos = _int64(value)
    return seconds + nanos / 1e9


_STR, _BYTES, _INT, _BOOL, _TIME = "str", "bytes", "int", "bool", "time"
_CONVERT = {_STR: lambda b: b.decode("utf-8", "replace"), _BYTES: bytes, _INT: _int64,
            _BOOL: bool, _TIME: _timestamp}
# field number -> (attribute, kind, repeated); kind may also be a message class
_SPECS: dict[type, dict[int, tuple]] = {
    Vertex: {1: ("digest", _STR, False), 2: ("inputs", _STR, True), 3: ("name", _STR, False),
             4: ("cached", _BOOL, False), 5: ("started", _TIME, False),
             6: ("completed", _TIME, False), 7: ("error", _STR, False)},
    VertexStatus: {1: ("id", _STR, False), 2: ("vertex", _STR, False), 3: ("name", _STR, False),
                   4: ("current", _INT, False), 5: ("total", _INT, False),
                   6: ("timestamp", _TIME, False), 7: ("started", _TIME, False),
                   8: ("completed", _TIME, False)},
    VertexLog: {1: ("vertex", _STR, False), 2: ("timestamp", _TIME, False),
                3: ("stream", _INT, False), 4: ("msg", _BYTES, False)},
    VertexWarning: {1: ("vertex", _STR, False), 2: ("level", _INT, False),
                    3: ("short", _BYTES, False), 4: ("detail", _BYTES, True),
                    5: ("url", _STR, False)},
    StatusResponse: {1: ("vertexes", Vertex, True), 2: ("statuses", VertexStatus, True),
                     3: ("logs", VertexLog, True), 4: ("warnings", VertexWarning, True)},
}


def _message(cls: type, data: bytes):
    spec, values = _SPECS[cls], {}
    for number, wire, raw in _fields(data):
        if number not in spec:
            continue                                   # unknown field: skipped
        attr, kind, repeated = spec[number]
        if (wire != 0) if kind in (_INT, _BOOL) else (wire != 2):
            raise TraceDecodeError(f"{cls.__name__}.{attr} (field {number}) has wire type {wire}")
        value = _message(kind, raw) if isinstance(kind, type) else _CONVERT[kind](raw)
        if repeated:
            values.setdefault(attr, []).append(value)
        else:
            values[attr] = value
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def decode_status(data: bytes) -> StatusResponse:
    """A StatusResponse from its protobuf bytes; raises TraceDecodeError when malformed."""
    return _message(StatusResponse, bytes(data))


def decode_aux(aux: str) -> StatusResponse:
    """A StatusResponse from the base64 `aux` of a `moby.buildkit.trace` message."""
    try:
        data = base64.b64decode(aux, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise TraceDecodeError(f"aux is not base64: {exc}") from None
    return decode_status(data)


def status_from_message(message: dict) -> StatusResponse | None:
    """The decoded trace if `message` (one JSON object of /build) is one, else None."""
    if isinstance(message, dict) and message.get("id") == "moby.buildkit.trace":
        aux = message.get("aux")
        if isinstance(aux, str):
            return decode_aux(aux)
    return None
