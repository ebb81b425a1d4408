"""Credentials for registries: the Credentials type (credentials.py, which imports nothing of
ours), the one lookup order (lookup.py), its sources (envvars.py: the env vars release.yml names;
dockerconfig.py: DOCKER_AUTH_CONFIG and the Docker config, which it also writes; cloud/: one
adapter per cloud registry type), the token cache (cache.py) and proofs (prove.py)."""
