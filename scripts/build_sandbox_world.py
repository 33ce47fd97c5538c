#!/usr/bin/env python3
"""Build the sandbox world and the seed precedent file: the generator lives in the package
(dispute_platform/sandbox/, its scenarios in scenarios.py); this script runs it from a checkout
without installing the package. Usage: python scripts/build_sandbox_world.py [--check] [--table] [--stats]"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO_ROOT))

from dispute_platform.sandbox.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
