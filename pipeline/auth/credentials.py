"""The Credentials type: what a lookup found for one registry, and where it came from.

Plain data with no imports from the rest of pipeline, so the registry client, the token cache,
the Docker config and every cloud adapter can use it; pipeline/auth/lookup.py finds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Credentials:
    source: str                      # e.g. "env LOCAL_USER/LOCAL_PASS", "docker config", "anonymous"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    identity_token: str | None = field(default=None, repr=False)
    registry_token: str | None = field(default=None, repr=False)
    method: str | None = None          # short: "env U/P", "Docker config", "boto3", "gcloud CLI"...
    expires_at: datetime | None = None  # timezone-aware; None when unknown or not expiring
    principal: str | None = None       # who, beyond the user name (a service account, a role)
    note: str | None = None            # why anonymous / what else to try (never a secret)

    @property
    def identity(self) -> str:
        """User name and principal, never a secret ("-" when anonymous)."""
        parts = [p for p in (self.username, f"({self.principal})" if self.principal else None) if p]
        return " ".join(parts) or ("-" if self.anonymous else "(token)")

    @property
    def anonymous(self) -> bool:
        return not (self.password or self.identity_token or self.registry_token)

    def auth_config(self, server: str) -> dict | None:
        """The dict docker-py sends as X-Registry-Auth for this registry."""
        if self.anonymous:
            return None
        config = {"serveraddress": server}
        if self.username:
            config["username"] = self.username
        if self.password:
            config["password"] = self.password
        if self.identity_token:
            config["identitytoken"] = self.identity_token
        if self.registry_token:
            config["registrytoken"] = self.registry_token
        return config

    def describe(self) -> str:
        who = f"user '{self.username}'" if self.username else "no user"
        if self.anonymous:
            return "anonymous (no credentials found" + (f": {self.note})" if self.note else ")")
        return f"{who} from {self.source}"


ANONYMOUS = Credentials(source="anonymous", method="anonymous")
