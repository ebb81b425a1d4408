"""The retry policy (tenacity): Retry-After parsing, backoff with jitter, what is retried, the
retry hook, error bodies; and the same policy around the engine push."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from pipeline.engine.client import PushAuthError, PushError, PushTransientError
from pipeline.registry.errors import RegistryAPIError, from_response
from pipeline.registry.retry import backoff, is_transient, parse_retry_after, retrying
from pipeline.registry.session import Response

NOW = 1_700_000_000.0


@pytest.mark.parametrize("value, expected", [
    ("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("1.5", 1.5), ("-3", 0.0),
    (formatdate(NOW + 30, usegmt=True), 30.0),                  # IMF-fixdate
    (formatdate(NOW - 30, usegmt=True), 0.0),                   # in the past: now
    ("Wednesday, 15-Nov-23 22:13:50 GMT", max(0.0, 1700086430.0 - NOW)),   # RFC 850
    (None, None), ("", None), ("soon", None), ("nan", None),
])
def test_parse_retry_after(value, expected):
    got = parse_retry_after(value, now=NOW)
    assert got == pytest.approx(expected) if expected is not None else got is None


def test_backoff_is_exponential_with_jitter_and_capped():
    assert backoff(1, 30.0, rand=lambda: 0.0) == 0.25
    assert backoff(1, 30.0, rand=lambda: 0.999999) == pytest.approx(0.5, abs=1e-5)
    assert backoff(3, 30.0, rand=lambda: 0.999999) == pytest.approx(2.0, abs=1e-4)
    assert backoff(20, 30.0, rand=lambda: 0.999999) == pytest.approx(30.0, abs=1e-3)
    assert backoff(20, 30.0, rand=lambda: 0.0) == 15.0


@pytest.mark.parametrize("max_delay, waited", [(30.0, 12.0), (5.0, 5.0)])
def test_retry_after_wins_but_is_capped(max_delay, waited):
    errors = [RegistryAPIError("x", status=429, transient=True, retry_after=12.0)]
    assert _run(errors, max_delay=max_delay)[1] == [waited]


def _run(errors, attempts=5, max_delay=30.0):
    sleeps: list[float] = []
    calls = []

    def op():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    for attempt in retrying(attempts, max_delay, sleep=sleeps.append):
        with attempt:
            return op(), sleeps, len(calls)


def test_transient_errors_are_retried_honouring_retry_after():
    errors = [RegistryAPIError("503", status=503, transient=True, retry_after=2.0),
              RegistryAPIError("reset", transient=True)]
    result, sleeps, calls = _run(errors)
    assert result == "ok" and calls == 3
    assert sleeps[0] == 2.0 and 0.5 <= sleeps[1] <= 1.0


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried(status):
    errors = [RegistryAPIError("no", status=status, auth=status in (401, 403))]
    sleeps: list[float] = []
    with pytest.raises(RegistryAPIError):
        for attempt in retrying(5, 30.0, sleep=sleeps.append):
            with attempt:
                raise errors[0]
    assert sleeps == []


def test_gives_up_after_the_attempts_with_the_last_error():
    errors = [RegistryAPIError(f"boom {i}", status=502, transient=True) for i in range(5)]
    with pytest.raises(RegistryAPIError, match="boom 2"):
        _run(errors, attempts=3)


def test_on_retry_numbers_the_attempts_and_gets_the_error_and_the_wait():
    errors = [RegistryAPIError(f"boom {i}", status=503, transient=True, retry_after=float(i))
              for i in range(1, 4)]
    seen, sleeps = [], []

    for attempt in retrying(5, 30.0, sleep=sleeps.append,
                            on_retry=lambda n, error, wait: seen.append((n, str(error), wait))):
        with attempt:
            if errors:
                raise errors.pop(0)
    assert seen == [(1, "boom 1", 1.0), (2, "boom 2", 2.0), (3, "boom 3", 3.0)]
    assert sleeps == [1.0, 2.0, 3.0]


def test_no_hook_call_and_no_wait_after_the_last_attempt():
    seen, sleeps = [], []
    with pytest.raises(RegistryAPIError, match="down 1"):
        for attempt in retrying(2, 30.0, sleep=sleeps.append,
                                on_retry=lambda *a: seen.append(a[0])):
            with attempt:
                raise RegistryAPIError(f"down {attempt.retry_state.attempt_number - 1}",
                                       transient=True)
    assert seen == [1] and len(sleeps) == 1


@pytest.mark.parametrize("error, retried", [
    (PushTransientError("connection reset by peer"), True),
    (PushAuthError("unauthorized"), False),
    (PushError("manifest invalid"), False),
    (RegistryAPIError("503", status=503, transient=True), True),
    (RegistryAPIError("denied", status=403, auth=True), False),
    (ValueError("a bug"), False),
])
def test_one_rule_for_registry_and_engine_errors(error, retried):
    assert is_transient(error) is retried
    calls, sleeps = [], []

    def push():
        calls.append(1)
        if len(calls) == 1:
            raise error
        return "sha256:ok"

    if retried:
        assert retrying(3, 1.0, sleep=sleeps.append)(push) == "sha256:ok"
        assert len(calls) == 2 and 0.25 <= sleeps[0] <= 0.5
    else:
        with pytest.raises(type(error)):
            retrying(3, 1.0, sleep=sleeps.append)(push)
        assert len(calls) == 1 and sleeps == []


def _response(status: int, body: bytes = b"", headers: dict | None = None) -> Response:
    return Response(status, body, headers)


@pytest.mark.parametrize("status, transient, auth", [
    (400, False, False), (401, False, True), (403, False, True), (404, False, False),
    (405, False, False), (408, True, False), (429, True, False), (500, True, False),
    (502, True, False), (503, True, False), (504, True, False),
])
def test_classification(status, transient, auth):
    err = from_response(_response(status), "reg.example", "GET x")
    assert (err.status, err.transient, err.auth) == (status, transient, auth)


def test_error_body_and_retry_after_are_read():
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down",
                                   "detail": {}}]}).encode()
    err = from_response(_response(429, body, {"Retry-After": "3"}), "reg.example", "PUT manifest a:b")
    assert err.code == "TOOMANYREQUESTS" and err.retry_after == 3.0
    assert str(err) == "reg.example: PUT manifest a:b: too many requests (HTTP 429): TOOMANYREQUESTS: slow down"
    text = from_response(_response(502, b"<html>Bad gateway</html>\n..."), "h", "GET x")
    assert str(text).endswith("HTTP 502: <html>Bad gateway</html>")
