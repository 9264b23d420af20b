"""`python -m reconciler` runs the podform command line."""

from reconciler.cli.main import main

raise SystemExit(main())
