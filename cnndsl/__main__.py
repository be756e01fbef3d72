"""`python -m cnndsl …` is the `cnndsl` command."""

import sys

from cnndsl.cli import main

sys.exit(main())
