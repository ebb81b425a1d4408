"""Credentials: the one lookup order (lookup.py), the Docker config, the token cache, proofs, and one
adapter per cloud registry type (cloud/)."""
