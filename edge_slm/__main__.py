from __future__ import annotations

import sys

from edge_slm.cli import main

sys.exit(main())
