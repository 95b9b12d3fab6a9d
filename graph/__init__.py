"""vectorql's API surface and composition root: Strawberry schema, FastAPI app, settings, CLI."""
