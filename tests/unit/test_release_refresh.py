"""A short-lived token close to expiry after a long build is fetched again before the push."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from pipeline.auth.lookup import Credentials


class _Client:
    closed = False

    def close(self):
        self.closed = True


def test_tokens_close_to_expiry_are_refetched_and_their_client_replaced(monkeypatch):
    import pipeline.auth.cloud as cloud
    from pipeline.app.release import Releaser

    now = datetime.now(timezone.utc)
    soon = Credentials("ACR exchange", "00000000-0000-0000-0000-000000000000", "old-token",
                       expires_at=now + timedelta(seconds=90))
    later = Credentials("gcloud", "oauth2accesstoken", "fine", expires_at=now + timedelta(hours=1))
    fresh = Credentials("ACR exchange", "00000000-0000-0000-0000-000000000000", "new-token",
                        expires_at=now + timedelta(hours=3))
    asked = []
    monkeypatch.setattr(cloud, "refresh", lambda registry, creds, env: asked.append(registry.name) or fresh)
    releaser = Releaser.__new__(Releaser)
    releaser.plan = SimpleNamespace(targets=[SimpleNamespace(registry="acr"), SimpleNamespace(registry="gar")])
    releaser.registries = {"acr": SimpleNamespace(name="acr"), "gar": SimpleNamespace(name="gar")}
    releaser.credentials = {"acr": soon, "gar": later}
    old_client = _Client()
    releaser.clients = {"acr": old_client, "gar": _Client()}
    releaser.env = {}
    messages = []
    releaser.reporter = SimpleNamespace(message=messages.append)

    releaser.refresh_expiring()
    assert asked == ["acr"]
    assert releaser.credentials == {"acr": fresh, "gar": later}
    assert old_client.closed and "acr" not in releaser.clients and "gar" in releaser.clients
    assert messages == ["[acr] its token was about to expire: fetched a new one"]
    assert "new-token" not in messages[0] and "old-token" not in messages[0]
