"""Entry point of ``python -m bus`` (see ``bus/_cli.py``)."""

from bus._cli import main

raise SystemExit(main())
