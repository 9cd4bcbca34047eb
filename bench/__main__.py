"""Entry point: ``python -m bench`` (see bench.commands)."""

from bench.commands import main

raise SystemExit(main())
