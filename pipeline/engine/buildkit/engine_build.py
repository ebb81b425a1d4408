"""BuildKit through the Engine API: POST /build?version=2 with the context tar as the body.

docker-py's `build()` cannot ask for BuildKit (it sends no `version`), so the request goes
through its low-level client (`APIClient._post`/`_stream_helper`), the same connection,
TLS and DOCKER_HOST handling. No session is opened, which is why secrets go through the
docker CLI instead (cli_build.py). The answer is a JSON stream: `moby.buildkit.trace`
messages (protobuf progress, trace.py), `moby.image.id` (the result), `errorDetail`
(HTTP 200 all the same: a failure is only in the stream).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from pipeline.engine.buildkit.context import prepare_context
from pipeline.engine.buildkit.failure import describe_failure
from pipeline.engine.buildkit.steps import StepTracker
from pipeline.engine.buildkit.trace import TraceDecodeError, decode_aux
from pipeline.engine.client import BuildFailed, stream_error
from pipeline.ui import redact

SESSION_HINT = ("a step mounts a secret (or an SSH agent) that release.yml does not list: add it "
                "to image.secrets, e.g. secrets: [{id: ID, env: VAR}], so the build runs "
                "through the docker CLI's session; RUN --mount=type=ssh is not supported")
BASE_LOGIN_HINT = ("check the base image's name; if its registry wants credentials, none were "
                   "found for it: add that registry to release.yml (username_env/password_env), "
                   "or `docker login HOST`")


def session_hint(error: str, failure) -> str | None:
    """A base image that cannot be loaded (BuildKit without a session cannot ask anyone for
    registry credentials); or "no active sessions" for a secret or an SSH agent."""
    if failure is not None and "load metadata for" in failure.name:
        return BASE_LOGIN_HINT
    return SESSION_HINT if "no active session" in error else None


class BuildKitFailed(BuildFailed):
    """A BuildKit build failed; the message names the Dockerfile line and the step's output."""


def build_via_engine(api, *, context: Path, dockerfile: str, tag: str, build_args: dict[str, str],
                     target: str | None, labels: dict[str, str], platform: str | None = None,
                     cache_from: list[str] | None = None, nocache: bool = False,
                     on_line: Callable[[str], None] = lambda line: None,
                     dockerfile_shown: str | None = None) -> str:
    """Build, tag `tag`, return the image id. BuildKitFailed names the failing step."""
    # lazy: docker-py takes ~0.2 s to import; only engine calls need it
    from docker.errors import APIError

    source = prepare_context(context, dockerfile)      # unreadable files: exit 2, nothing sent
    params = {
        "t": tag, "version": "2", "dockerfile": source.dockerfile,
        # every image carries inline cache metadata: once pushed, it is a cache source
        "buildargs": json.dumps({**build_args, "BUILDKIT_INLINE_CACHE": "1"}),
        "labels": json.dumps(labels), "rm": "1", "forcerm": "1",
    }
    if target:
        params["target"] = target
    if platform:
        params["platform"] = platform
    if cache_from:
        params["cachefrom"] = json.dumps(list(cache_from))
    if nocache:
        params["nocache"] = "1"
    tracker = StepTracker(on_line)
    image_id = response = None
    try:
        response = api._post(api._url("/build"), params=params, data=source.tar(),
                             headers={"Content-Type": "application/x-tar"}, stream=True,
                             timeout=None)
        api._raise_for_status(response)
        for chunk in api._stream_helper(response, decode=True):
            if chunk.get("id") == "moby.buildkit.trace":
                try:
                    tracker.feed(decode_aux(chunk.get("aux") or ""))
                except TraceDecodeError:
                    pass              # progress only: the build's outcome comes separately
                continue
            error = stream_error(chunk)
            if error:
                failure = tracker.failure()
                raise BuildKitFailed(describe_failure(Path(context, dockerfile), error, failure,
                                                      dockerfile_shown),
                                     hint=session_hint(error, failure))
            aux = chunk.get("aux")
            if chunk.get("id") == "moby.image.id" and isinstance(aux, dict):
                image_id = aux.get("ID") or image_id
            text = chunk.get("stream")
            if text and text.strip() and not text.startswith("Successfully tagged"):
                for line in text.splitlines():
                    if line.strip():
                        on_line(redact.redact(line))
    except APIError as exc:
        raise BuildKitFailed(f"build failed: {redact.redact(exc.explanation or str(exc))}") from None
    finally:
        if response is not None:
            response.close()
    on_line(tracker.summary())
    if image_id is None:
        image_id = api.inspect_image(tag)["Id"]
    return image_id
