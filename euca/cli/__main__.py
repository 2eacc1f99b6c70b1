import sys

from euca.cli.main import main

sys.exit(main())
