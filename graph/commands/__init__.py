"""The presentation side of CLI commands that need more than a few lines (progress, reports)."""
