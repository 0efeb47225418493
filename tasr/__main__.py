import sys

from tasr.cli import main

sys.exit(main())
