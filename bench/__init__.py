"""Benchmarks: `make bench` runs them and prints figures as ratios to same-run baselines."""
