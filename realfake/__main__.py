"""``python -m realfake``: see :mod:`realfake.cli`."""

from .cli import main

raise SystemExit(main())
