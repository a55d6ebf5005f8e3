"""Benchmarks of the course code (bench/README.md). Run from the checkout's root:
`python -m bench.run` (or `make bench`); it rewrites bench/RESULTS.md."""
