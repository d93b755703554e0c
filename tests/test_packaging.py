"""The wheel: schemas inside, and no bare top-level ``fixtures`` or ``schemas`` package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next(out.glob("bria_mock-*.whl"))


def test_the_wheel_maps_the_folders_under_mock_server(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("bria_mock-")}

    assert top_level == {"mock_server"}
    assert "mock_server/schemas/error.json" in names
    assert "mock_server/fixtures/plugin.py" in names
    assert "mock_server/py.typed" in names


def test_installing_beside_pypi_fixtures_leaves_both_importable(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    subprocess.run([*pip, "fixtures"], check=True, capture_output=True, timeout=300)
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=300)
    probe = (
        "import fixtures, mock_server.fixtures.plugin, mock_server.contract as c;"
        "assert hasattr(fixtures, 'Fixture'), fixtures.__file__;"
        "print(c.schema_dir())"
    )

    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)}, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target / "mock_server" / "schemas")
