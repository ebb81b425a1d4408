"""A small OCI Distribution API client on urllib3: auth, manifests, blobs, copy, tags.

    reference.py  parse_reference / Reference (Docker Hub rules)
    client.py     RegistryClient: manifests, blobs, uploads, mounts, tags, catalog, delete
    copy.py       copy_image / tag_image / CopyResult
    transport.py  scheme choice, TLS, auth and the single re-auth on 401
    auth.py       WWW-Authenticate parsing, scopes, Bearer token cache and fetch
    retry.py      the retry policy (tenacity), also for the engine push and cloud tokens
    upload.py     one monolithic / chunked blob upload attempt
    stream.py     verifying blob download stream, sized upload body
    links.py      Link header pagination;  limits.py per-host concurrency
    manifest.py   media types, manifest parsing;  digest.py digests and verification
    errors.py     RegistryAPIError and error-body parsing
    session.py    HTTP on urllib3: pools per proxy and CA, redirects, error messages
    proxy.py      HTTPS_PROXY / NO_PROXY;  tls.py the CAs trusted (system, ca_file)
    hosts.py      is_loopback: the one rule for "this machine" (plain HTTP, realms, CI, hosting)

Submodules are imported lazily by their users: `import pipeline.registry` stays cheap.
"""
