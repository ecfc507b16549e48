"""``python -m app`` runs the ``gateway`` command."""

from app.cli import main

main()
