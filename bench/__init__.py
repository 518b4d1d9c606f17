"""Side-by-side benchmarks of our Agent Server against peer servers (`uv run python -m bench`).

See docs/performance.md for what is measured, how, and the latest figures.
"""
