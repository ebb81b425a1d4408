"""Builds with BuildKit: context, progress, the engine and CLI ways in."""
