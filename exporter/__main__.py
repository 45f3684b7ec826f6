"""`python -m exporter`: the demo login exporter (same as `alertsleuth-exporter`)."""

import sys

from exporter.app import main

sys.exit(main())
