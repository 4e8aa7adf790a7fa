"""Build, serve, test and benchmark tooling behind build.py (not part of the digitnet package)."""
