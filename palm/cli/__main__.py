import sys

from palm.cli import main

sys.exit(main())
