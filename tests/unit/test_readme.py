"""The README stays true: every setting is in its configuration table, and its commands exist."""

from __future__ import annotations

from pathlib import Path

from graph.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in Settings.model_fields
        if f"`{ENV_PREFIX}{name.upper()}`" not in readme
    ]
    assert not missing, f"README configuration table lacks {missing}"


def test_readme_make_targets_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test", "bench-ingest", "bench-search"):
        assert f"make {target}" in readme
        assert f"\n{target}:" in makefile
