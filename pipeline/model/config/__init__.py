"""release.yml: the loader (positions, errors with file:line), its types, and its JSON Schema."""
