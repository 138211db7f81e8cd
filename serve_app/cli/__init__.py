"""Command-line entry points: the local cluster launcher and the migration runner."""
