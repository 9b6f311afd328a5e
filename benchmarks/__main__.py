"""``python -m benchmarks`` (``make bench``): see benchmarks/README.md."""

import sys

from .run import main

sys.exit(main())
