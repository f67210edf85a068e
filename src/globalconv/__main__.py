import sys

from globalconv.cli import main

sys.exit(main())
