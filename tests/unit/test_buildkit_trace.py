"""BuildKit trace decoding: the recorded /build streams of Engine 20.10, and hand-made protobuf."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest

from pipeline.engine.buildkit.trace import (
    StatusResponse,
    TraceDecodeError,
    Vertex,
    VertexLog,
    VertexStatus,
    VertexWarning,
    decode_aux,
    decode_status,
    status_from_message,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "buildkit"


# -- a tiny protobuf encoder for the hand-made cases ---------------------------------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vint(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return key(number, 2) + varint(len(payload)) + payload


def fixed64(number: int, value: int) -> bytes:
    return key(number, 1) + struct.pack("<Q", value)


def fixed32(number: int, value: int) -> bytes:
    return key(number, 5) + struct.pack("<I", value)


def timestamp(seconds: int, nanos: int = 0) -> bytes:
    return vint(1, seconds) + (vint(2, nanos) if nanos else b"")


def every_unknown_kind(base: int) -> bytes:
    """Unknown fields of all four wire types, numbered from `base`."""
    return (vint(base, 123456789) + fixed64(base + 1, 2 ** 63 + 5) + ld(base + 2, b"\x00\xffjunk")
            + fixed32(base + 3, 0xDEADBEEF))


# -- the recordings ------------------------------------------------------------------------------

def recording(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def final_vertices(name: str) -> dict[str, Vertex]:
    """digest -> the last state the stream sent of each vertex."""
    out: dict[str, Vertex] = {}
    for message in recording(name):
        status = status_from_message(message)
        if status:
            for vertex in status.vertexes:
                out[vertex.digest] = vertex
    return out


def by_name(vertices: dict[str, Vertex]) -> dict[str, Vertex]:
    return {v.name: v for v in vertices.values()}


BUILDER_3 = ('[builder 3/3] RUN mkdir /out &&     for i in 1 2 3; do echo "builder: compiling '
             'part $i"; sleep 0.4; done &&     echo app > /out/app')
TOOLS_3 = ('[tools 3/3] RUN for i in 1 2 3; do echo "tools: fetching $i"; sleep 0.4; done; '
           'echo tool > /t/tool')


def test_trace_multistage_recording_vertices():
    vertices = by_name(final_vertices("api-multistage.jsonl"))
    assert list(vertices) == [
        "[internal] load remote build context",
        "copy /context /",
        "[internal] load metadata for docker.io/library/bkrec-base:1",
        "[builder 1/3] COPY busybox /bin/busybox",
        '[builder 2/3] RUN ["/bin/busybox", "--install", "-s", "/bin"]',
        BUILDER_3,
        "[stage-2 1/2] COPY --from=builder /out/app /app",
        "[tools 1/3] FROM docker.io/library/bkrec-base:1",
        "[tools 2/3] WORKDIR /t",
        TOOLS_3,
        "[stage-2 2/2] COPY --from=tools /t/tool /tool",
        "exporting to image",
    ]
    assert vertices["[builder 1/3] COPY busybox /bin/busybox"].cached is True
    assert vertices[BUILDER_3].cached is False
    assert all(v.error == "" and v.completed is not None for v in vertices.values())
    builder = vertices[BUILDER_3]
    assert builder.started == pytest.approx(1796396178.9677708)
    assert builder.completed - builder.started == pytest.approx(1.391, abs=0.001)
    # the last COPY depends on both stages
    last = vertices["[stage-2 2/2] COPY --from=tools /t/tool /tool"]
    assert set(last.inputs) == {vertices["[stage-2 1/2] COPY --from=builder /out/app /app"].digest,
                                vertices[TOOLS_3].digest}
    assert all(d.startswith("sha256:") and len(d) == 71 for d in last.inputs)


def test_trace_multistage_recording_logs_and_statuses():
    logs: list[VertexLog] = []
    statuses: list[VertexStatus] = []
    for message in recording("api-multistage.jsonl"):
        status = status_from_message(message)
        if status:
            logs += status.logs
            statuses += status.statuses
    vertices = by_name(final_vertices("api-multistage.jsonl"))
    builder, tools = vertices[BUILDER_3].digest, vertices[TOOLS_3].digest
    assert [(log.vertex, log.msg) for log in logs] == [
        (builder, b"builder: compiling part 1\n"), (tools, b"tools: fetching 1\n"),
        (builder, b"builder: compiling part 2\n"), (tools, b"tools: fetching 2\n"),
        (builder, b"builder: compiling part 3\n"), (tools, b"tools: fetching 3\n"),
    ]
    assert {log.stream for log in logs} == {1}
    assert logs[0].timestamp == pytest.approx(1796396179.141737)
    assert [s.id for s in statuses if s.completed is not None] == [
        "exporting layers",
        "writing image sha256:8ada4cb43bddc908d6e0d9a50dd8f7bd75cb8b9b4486861c312845b0e694aef3",
        "naming to docker.io/library/bkrec-ok:1",
    ]
    assert {s.vertex for s in statuses} == {vertices["exporting to image"].digest}


def test_trace_cached_recording_every_dockerfile_step_cached():
    vertices = by_name(final_vertices("api-cached.jsonl"))
    steps = {name: v.cached for name, v in vertices.items() if name.startswith("[") and
             not name.startswith("[internal]")}
    assert len(steps) == 8
    # the base image's FROM is the only step the engine does not flag as cached
    assert [name for name, cached in steps.items() if not cached] == [
        "[tools 1/3] FROM docker.io/library/bkrec-base:1"]
    messages = recording("api-cached.jsonl")
    assert {"aux": {"ID": "sha256:8ada4cb43bddc908d6e0d9a50dd8f7bd75cb8b9b4486861c312845b0e694aef3"},
            "id": "moby.image.id"} in messages


def test_trace_failing_recording():
    vertices = by_name(final_vertices("api-fail.jsonl"))
    failed = {name: v.error for name, v in vertices.items() if v.error}
    assert len(failed) == 2
    run = next(name for name in failed if name.startswith("[stage-1 4/5] RUN"))
    assert failed[run].startswith('executor failed running [/bin/sh -c echo "configuring for x86_64";')
    assert failed[run].endswith("]: exit code: 2")
    assert failed['[slow 2/2] RUN echo "slow: start"; sleep 3; echo "slow: done"'].endswith(
        "exit code: 137: context canceled: context canceled")
    assert vertices["[stage-1 5/5] COPY --from=slow /bin/busybox /x"].started is None

    logs = [log for m in recording("api-fail.jsonl") if (s := status_from_message(m))
            for log in s.logs]
    run_digest = vertices[run].digest
    stderr = [log.msg for log in logs if log.vertex == run_digest and log.stream == 2]
    assert stderr == [b"ld: error: undefined reference to 'main'\n"]
    stdout = b"".join(log.msg for log in logs if log.vertex == run_digest and log.stream == 1)
    assert stdout.startswith(b"configuring for x86_64\ndownloading 10%\rdownloading 55%\r")
    assert b"compiling unit 12\n\n" in stdout
    last = recording("api-fail.jsonl")[-1]
    assert status_from_message(last) is None
    assert last["errorDetail"]["message"].endswith("exit code: 2")


def test_trace_status_from_message_other_messages():
    assert status_from_message({"stream": "Successfully tagged x:1\n"}) is None
    assert status_from_message({"id": "moby.image.id", "aux": {"ID": "sha256:ab"}}) is None
    assert status_from_message({"id": "moby.buildkit.trace", "aux": {"not": "base64"}}) is None
    assert status_from_message("text") is None


def test_trace_decode_aux_matches_decode_status():
    aux = recording("api-multistage.jsonl")[0]["aux"]
    assert decode_aux(aux) == decode_status(base64.b64decode(aux))
    assert decode_aux(aux).vertexes[0].name == "[internal] load remote build context"


# -- hand-made messages --------------------------------------------------------------------------

def test_trace_empty_message():
    status = decode_status(b"")
    assert status == StatusResponse()
    assert status.vertexes == status.statuses == status.logs == status.warnings == ()
    assert decode_aux("") == StatusResponse()


def test_trace_unknown_fields_of_every_wire_type_are_skipped():
    vertex = (every_unknown_kind(20) + ld(1, "sha256:aa") + ld(2, "sha256:in1")
              + every_unknown_kind(100) + ld(2, "sha256:in2") + ld(3, "[1/2] RUN x")
              + vint(4, 1) + ld(5, timestamp(10, 500_000_000)) + ld(6, timestamp(12))
              + ld(7, "boom") + ld(8, ld(1, "group-id") + ld(2, "group name")))
    log = ld(1, "sha256:aa") + ld(2, timestamp(11) + every_unknown_kind(3)) + vint(3, 2) \
        + ld(4, b"out\xff\n") + every_unknown_kind(9)
    data = (every_unknown_kind(5) + ld(1, vertex) + ld(3, log) + every_unknown_kind(1000)
            + every_unknown_kind(2 ** 28))
    status = decode_status(data)
    assert status.vertexes == (Vertex("sha256:aa", ("sha256:in1", "sha256:in2"), "[1/2] RUN x",
                                      True, 10.5, 12.0, "boom"),)
    assert status.logs == (VertexLog("sha256:aa", 11.0, 2, b"out\xff\n"),)
    assert status.statuses == status.warnings == ()


def test_trace_status_fields_and_multibyte_varints():
    st = (ld(1, "extracting sha256:abc") + ld(2, "sha256:v") + ld(3, "extracting")
          + vint(4, 300) + vint(5, 2 ** 40 + 7) + ld(6, timestamp(1796396179, 141737000))
          + ld(7, timestamp(1796396178)) + ld(8, timestamp(1796396180, 1)))
    assert varint(300) == b"\xac\x02" and len(varint(2 ** 40 + 7)) == 6
    (status,) = decode_status(ld(2, st)).statuses
    assert status.id == "extracting sha256:abc" and status.vertex == "sha256:v"
    assert status.name == "extracting"
    assert status.current == 300
    assert status.total == 2 ** 40 + 7
    assert status.timestamp == pytest.approx(1796396179.141737)
    assert status.started == 1796396178.0
    assert status.completed == pytest.approx(1796396180.000000001)


def test_trace_negative_int64_and_timestamps():
    assert len(varint(-1)) == 10
    st = ld(1, "x") + vint(4, -1) + vint(5, -(2 ** 63)) + ld(6, vint(1, -5) + vint(2, -250_000_000))
    (status,) = decode_status(ld(2, st)).statuses
    assert status.current == -1
    assert status.total == -(2 ** 63)
    assert status.timestamp == pytest.approx(-5.25)
    (log,) = decode_status(ld(3, vint(3, -2))).logs
    assert log.stream == -2


def test_trace_warnings_decoded():
    warning = (ld(1, "sha256:w") + vint(2, 1) + ld(3, b"FROM uses a mutable tag")
               + ld(4, b"detail one") + ld(4, b"detail two") + ld(5, "https://docs.example/w")
               + ld(6, ld(1, "Dockerfile") + ld(2, b"FROM x")) + ld(7, ld(1, vint(1, 3))))
    status = decode_status(ld(4, warning) + ld(4, ld(3, b"second")))
    assert status.warnings == (
        VertexWarning("sha256:w", 1, b"FROM uses a mutable tag", (b"detail one", b"detail two"),
                      "https://docs.example/w"),
        VertexWarning(short=b"second"),
    )


def test_trace_scalar_seen_twice_keeps_the_last_and_bad_utf8_is_replaced():
    (vertex,) = decode_status(ld(1, ld(3, "first") + ld(3, b"sec\xffond") + vint(4, 0))).vertexes
    assert vertex.name == "sec\ufffdond"
    assert vertex.cached is False
    assert vertex.started is None and vertex.completed is None


@pytest.mark.parametrize("data, message", [
    (b"\x80", "varint"),                                   # key cut in the middle
    (b"\x0a", "varint"),                                   # length missing
    (b"\x0a\x80", "varint"),                               # length cut in the middle
    (b"\x0a\x05abc", "past the end"),                      # length beyond the data
    (ld(2, ld(1, b"x")) + b"\x0a\xff\xff\xff\xff\x0f", "past the end"),  # after a good one
    (key(9, 1) + b"\x01\x02\x03", "fixed64"),              # unknown fixed64, truncated
    (key(9, 5) + b"\x01\x02", "fixed32"),                  # unknown fixed32, truncated
    (key(9, 0) + b"\xff" * 10 + b"\x01", "varint"),        # 11-byte varint
    (key(9, 0) + b"\xff\xff", "varint"),                   # unknown varint, truncated
    (ld(1, b"\x1a\x05ab"), "past the end"),                # nested Vertex.name truncated
    (ld(2, ld(6, b"\x08")), "varint"),                     # nested Timestamp truncated
    (key(9, 3) + key(9, 4), "wire type 3"),                # groups are not proto3
    (key(9, 7), "wire type 7"),
    (b"\x00\x01", "field number 0"),
    (ld(1, vint(3, 5)), "Vertex.name"),                    # known field, wrong wire type
    (vint(1, 5), "StatusResponse.vertexes"),
    (ld(1, ld(4, b"\x01")), "Vertex.cached"),
    (ld(2, ld(6, ld(1, b"x"))), "Timestamp field 1"),
])
def test_trace_malformed_raises(data, message):
    with pytest.raises(TraceDecodeError, match=message):
        decode_status(data)


def test_trace_decode_error_is_a_value_error():
    assert issubclass(TraceDecodeError, ValueError)
    with pytest.raises(ValueError):
        decode_status(b"\x0a\x05")
    with pytest.raises(TraceDecodeError, match="base64"):
        decode_aux("not base64!")
    with pytest.raises(TraceDecodeError, match="past the end"):
        decode_aux(base64.b64encode(b"\x0a\x05abc").decode())
