"""The Docker Engine: the client (docker-py), read-only socket calls, BuildKit builds, `docker save`
export to registry blobs, deterministic compression, spool directories."""
