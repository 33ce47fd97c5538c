import sys

from dispute_platform.sandbox.build import main

sys.exit(main())
