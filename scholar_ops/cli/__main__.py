"""`python -m scholar_ops.cli`: the same as `scholar-ops`."""

import sys

from scholar_ops.cli import main

sys.exit(main())
