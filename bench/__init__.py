"""Benchmarks: the service side by side with the bare library, in one run, as ratios."""
