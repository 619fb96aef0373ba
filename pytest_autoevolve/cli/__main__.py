"""``python -m pytest_autoevolve.cli``: the ``autoevolve`` command."""

import sys

from pytest_autoevolve.cli.app import main

sys.exit(main())
