"""`uv run python -m bench`: run the benchmark (see bench/run.py for the options)."""

from bench.run import main

raise SystemExit(main())
