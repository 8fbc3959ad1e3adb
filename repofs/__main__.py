"""``python -m repofs`` runs the command line."""

from .cli.entry import main

main()
