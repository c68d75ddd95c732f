import sys

from transenc.cli import main

sys.exit(main())
