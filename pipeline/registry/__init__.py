"""A small OCI Distribution API client (on requests): auth, manifest lookups."""
