"""The serving benchmarks' parts (benchmarks/ is not an installed package: the scripts beside this folder import
it as `serving`, their own directory being first on sys.path)."""
