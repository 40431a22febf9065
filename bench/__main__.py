# Usage: .venv/bin/python -m bench [--rounds N] [--duration-s S] [--smoke] [--out DIR]  (make bench)
"""Entry point of `python -m bench`."""

from bench.run import main

raise SystemExit(main())
