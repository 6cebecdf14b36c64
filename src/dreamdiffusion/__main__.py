import sys

from dreamdiffusion.cli import main

sys.exit(main())
