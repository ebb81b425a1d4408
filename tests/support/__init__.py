"""Test infrastructure for `release`: a Docker Engine, local registries, a private CA, image contexts.

Everything here is deliberately independent of the product code in `pipeline/`: the
registries are checked with plain `requests` calls against the registry HTTP API and with
`skopeo`, never with the code under test.

Modules:
    dockerd     ensure_engine() -> EngineHandle (uses a running daemon or starts `dockerd`)
    pki         make_pki(dir) -> PKI (private CA + server cert via the `openssl` CLI)
    registries  LocalRegistry (runs `docker-registry serve`), skopeo_digest()
    images      write_context(), build_image(), push_image(), unique_content()
"""
