"""The Partner Center reference fixtures live in the repository (tests/partner_center/fixtures/) so a
fresh clone runs the model and contract tests on its own; where the team's shared reference folder is
beside the repository, the copies must equal it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COPIES = REPO_ROOT / "tests" / "partner_center" / "fixtures"
SHARED = REPO_ROOT.parent / "shared" / "reference" / "partner-center" / "fixtures"


def test_the_copies_equal_the_shared_reference() -> None:
    if not SHARED.is_dir():
        pytest.skip("no shared reference folder beside this clone; the copies are the reference")
    shared = {path.name: path.read_bytes() for path in SHARED.iterdir() if path.is_file()}
    copies = {path.name: path.read_bytes() for path in COPIES.iterdir() if path.is_file()}
    assert copies == shared
