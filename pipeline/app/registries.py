"""The registries of one run: each one's credentials and client, made once and reused.

Credentials are resolved before anything is touched (a named env var that is not set is a
usage error then, not after half a release); a short-lived cloud token close to expiry is
fetched again before the push; a token the registry refuses is renewed once by the client.
Clients come from a factory (default: pipeline/registry/client.py's RegistryClient), so
the release rules can be run against fakes.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Mapping

from pipeline.app.ports import ClientFactory, RegistryAPI, Reporter
from pipeline.auth import lookup
from pipeline.auth import prove as proof
from pipeline.auth.credentials import Credentials
from pipeline.errors import ReleaseError
from pipeline.registry.client import RegistryClient
from pipeline.registry.reference import normalize_host
from pipeline.ui.redact import redact


def registry_client(registry, credentials: Credentials, *, retry, on_retry, renew) -> RegistryClient:
    """The real client of a release.yml registry entry (the default ClientFactory)."""
    return RegistryClient(registry.registry, credentials, ca_file=registry.ca_file,
                          insecure=registry.insecure, retry_attempts=retry.attempts,
                          retry_max_delay=retry.max_delay, on_retry=on_retry, renew=renew)


def push_credentials(registry, env: Mapping[str, str]) -> Credentials:
    """A registry's credentials for a push, in the one lookup order (pipeline/auth)."""
    return lookup.credentials_for(registry, env, push=True)


class Registries:
    def __init__(self, config, reporter: Reporter, *, env: Mapping[str, str] | None = None,
                 client_factory: ClientFactory | None = None,
                 credentials: Callable[[object, Mapping[str, str]], Credentials] | None = None):
        """`config`: release.yml (its registries and retry settings); `credentials(registry,
        env)`: how a registry's credentials are found (default: push_credentials)."""
        self.config = config
        self.reporter = reporter
        self.env = os.environ if env is None else env
        self.entries = {r.name: r for r in config.registries}
        self.make_client = client_factory or registry_client
        self.find_credentials = credentials or push_credentials
        self.credentials: dict[str, Credentials] = {}
        self.clients: dict[str, RegistryAPI] = {}
        self._retries_shown: dict[str, int] = {}    # registry -> highest attempt reported
        self._retry_lock = threading.Lock()

    def resolve(self, names: Iterable[str]) -> None:
        """Every named registry's credentials and client (an unreadable ca_file is a usage
        error now, not after half a release)."""
        for name in names:
            if name not in self.credentials:
                self.credentials[name] = self.find_credentials(self.entries[name], self.env)
            self.client(name)

    def client(self, name: str) -> RegistryAPI:
        if name not in self.clients:
            def on_retry(what, attempt, error, wait, name=name):
                # one line per attempt and registry, not one per layer retrying in parallel
                with self._retry_lock:
                    if attempt <= self._retries_shown.get(name, 0):
                        return
                    self._retries_shown[name] = attempt
                self.reporter.retrying(name, what, attempt, redact(str(error)), wait)

            def renew(name=name):
                """A refused token (expired while we worked): ask its source once more."""
                self.credentials[name] = lookup.refresh(self.entries[name], self.credentials[name],
                                                 self.env)
                return self.credentials[name]

            self.clients[name] = self.make_client(self.entries[name], self.credentials[name],
                                                  retry=self.config.retry, on_retry=on_retry,
                                                  renew=renew)
        return self.clients[name]

    def refresh_expiring(self, names: Iterable[str]) -> None:
        """Short-lived cloud tokens (Artifact Registry 1 h, ACR ~3 h) fetched before a long
        build may be close to expiry by the push: fetch them again now (within 5 minutes of
        expiry), and give that registry a new client."""
        for name in dict.fromkeys(names):
            creds = self.credentials.get(name)
            if creds is None or not lookup.expiring(creds):
                continue
            self.credentials[name] = lookup.refresh(self.entries[name], creds, self.env)
            client = self.clients.pop(name, None)
            if client is not None:
                client.close()
            self.reporter.message(f"[{name}] its token was about to expire: fetched a new one")

    def preflight(self, names: Iterable[str], jobs: int = 4) -> None:
        """Before anything is built or pushed: prove every named registry's credentials
        (push scope where the registry issues tokens), all at once, as `release login` does.
        One that fails stops the run here (exit 1), naming it, with nothing built or pushed."""
        names = list(dict.fromkeys(names))
        self.resolve(names)
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(names)))) as pool:
            proofs = dict(zip(names, pool.map(
                lambda n: proof.prove(self.entries[n], self.credentials[n]), names)))
        failed = {n: p for n, p in proofs.items() if not p.ok}
        if not failed:
            return
        lines = [f"[{n}] {self.entries[n].registry}: {redact(p.detail)}"
                 + (f"\n    hint: {redact(p.hint)}" if p.hint else "") for n, p in failed.items()]
        raise ReleaseError(f"{len(failed)} of {len(names)} registries failed the check before "
                           f"the build, so nothing was built or pushed:\n  " + "\n  ".join(lines),
                           hint="fix the credentials or the registry, or pass --skip-preflight "
                                "to try anyway")

    def auth_hint(self, name: str, host: str) -> str:
        return (f"credentials used: {self.credentials[name].describe()}. Set username_env/password_env "
                f"for '{name}' in release.yml, or run `docker login {host}`")

    def error_text(self, name: str, host: str, exc) -> str:
        """A registry error as the report shows it: with the credentials used when the
        registry refused them (`exc.auth`)."""
        return str(exc) + (f" — {self.auth_hint(name, host)}" if exc.auth else "")

    def for_host(self, host: str) -> tuple[RegistryAPI, Credentials] | None:
        """(client, credentials) of release.yml's entry for `host`, if there is one."""
        for r in self.entries.values():
            if normalize_host(r.registry) == normalize_host(host):
                self.resolve([r.name])
                return self.client(r.name), self.credentials[r.name]
        return None
