"""The ``vectorql`` command (``python -m graph.cli``): serve, schema, import, reconcile, keys."""

from graph.cli.main import cli, load_settings, main

__all__ = ["cli", "load_settings", "main"]
