"""``python -m repofs`` runs the command line."""

from .cli.main import main

main()
