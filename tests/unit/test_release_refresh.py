"""A short-lived token close to expiry after a long build is fetched again before the push."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from pipeline.auth.credentials import Credentials


class _Client:
    closed = False

    def close(self):
        self.closed = True


def test_tokens_close_to_expiry_are_refetched_and_their_client_replaced(monkeypatch):
    import pipeline.auth.lookup as lookup
    from pipeline.app.registries import Registries

    now = datetime.now(timezone.utc)
    soon = Credentials("ACR exchange", "00000000-0000-0000-0000-000000000000", "old-token",
                       expires_at=now + timedelta(seconds=90))
    later = Credentials("gcloud", "oauth2accesstoken", "fine", expires_at=now + timedelta(hours=1))
    fresh = Credentials("ACR exchange", "00000000-0000-0000-0000-000000000000", "new-token",
                        expires_at=now + timedelta(hours=3))
    asked = []
    monkeypatch.setattr(lookup, "refresh", lambda registry, creds, env: asked.append(registry.name) or fresh)
    messages = []
    config = SimpleNamespace(registries=[SimpleNamespace(name="acr"), SimpleNamespace(name="gar")])
    registries = Registries(config, SimpleNamespace(message=messages.append), env={})
    registries.credentials = {"acr": soon, "gar": later}
    old_client = _Client()
    registries.clients = {"acr": old_client, "gar": _Client()}

    registries.refresh_expiring(["acr", "gar", "acr"])
    assert asked == ["acr"]
    assert registries.credentials == {"acr": fresh, "gar": later}
    assert old_client.closed and "acr" not in registries.clients and "gar" in registries.clients
    assert messages == ["[acr] its token was about to expire: fetched a new one"]
    assert "new-token" not in messages[0] and "old-token" not in messages[0]
