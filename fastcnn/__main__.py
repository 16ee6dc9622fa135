"""``python -m fastcnn``: the same as the ``fastcnn`` command."""

from .cli import main

raise SystemExit(main())
