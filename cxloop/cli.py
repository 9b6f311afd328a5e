"""The ``cxloop`` console script: Django's management commands with cxloop's settings."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cxloop.settings")
    from django.core.management import execute_from_command_line

    args = list(argv if argv is not None else sys.argv)
    args[0] = "cxloop"
    execute_from_command_line(args)


if __name__ == "__main__":
    main()
