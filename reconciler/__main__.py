"""`python -m reconciler` runs the podform command line."""

from reconciler.cli import main

raise SystemExit(main())
