"""``python -m fastcnn``: the same as the ``fastcnn`` command."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while importing: the same one line and status as main's
    print("fastcnn: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
