"""release: build a container image once, push it to every registry, prove the digests match."""

__version__ = "0.1.0"
