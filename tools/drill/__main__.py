# Usage: python -m tools.drill {load,local} --help   (e.g. `python -m tools.drill local --control`)
"""Entry point of the rolling-update drill."""

from tools.drill.cli import main

raise SystemExit(main())
