"""The `release` command line (click only): the root group with its lazy command table (main.py) and
one module per command group."""
