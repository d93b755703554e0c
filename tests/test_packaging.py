"""Packaging: the wheel maps the top-level folders under ``mock_server`` (each file once, no bare
``fixtures`` or ``schemas``), the sdist builds the same wheel, and a checkout or an editable install
imports the very files the wheel ships, with no path tricks at run time."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # wheel builds and installs in their own processes

ROOT = Path(__file__).resolve().parents[1]
LINKED_FOLDERS = ("schemas", "fixtures", "contract_tests")
# What a probe prints about the modules it imports: where each one's file really is.
PROBE = """
import importlib.util, json, sys
from pathlib import Path
import mock_server

names = ["mock_server.fixtures.plugin", "mock_server.contract_tests.strategies", "mock_server.contract"]
origins = {name: str(Path(importlib.util.find_spec(name).origin).resolve()) for name in names}
schemas = Path(mock_server.__path__[0]) / "schemas" / "error.json"
print(json.dumps({"origins": origins, "path": list(mock_server.__path__), "schema": str(schemas.resolve())}))
"""


def run(*command: str, cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def shipped_files() -> set[str]:
    """The files of the linked folders, as the wheel must hold them (under ``mock_server/``)."""
    return {
        f"mock_server/{path.relative_to(ROOT)}"
        for folder in LINKED_FOLDERS
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def sdist_names(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as archive:
        return archive.getnames()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built straight from the checkout, as ``pip install .`` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT))
    return next(out.glob("bria_mock-*.whl"))


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel built from it, as a release is built (``python -m build``)."""
    out = tmp_path_factory.mktemp("release")
    run(sys.executable, "-m", "build", "-o", str(out), str(ROOT))
    return out


def test_the_checkout_links_the_folders_into_the_package() -> None:
    for folder in LINKED_FOLDERS:
        link = ROOT / "mock_server" / folder
        assert link.is_symlink(), f"mock_server/{folder} should be a link to ../{folder}"
        assert link.resolve() == ROOT / folder


def test_the_wheel_maps_the_folders_under_mock_server_each_file_once(wheel: Path) -> None:
    names = wheel_names(wheel)
    top_level = {name.split("/")[0] for name in names if not name.startswith("bria_mock-")}

    assert top_level == {"mock_server"}
    assert [name for name, count in collections.Counter(names).items() if count > 1] == []
    assert shipped_files() <= set(names)
    assert "mock_server/py.typed" in names


def test_the_wheel_ships_the_inspector_page_and_its_files(wheel: Path) -> None:
    static = ROOT / "mock_server" / "inspector" / "static"
    page_files = {f"mock_server/inspector/static/{path.name}" for path in static.iterdir()}

    assert page_files <= set(wheel_names(wheel))
    assert {name.rsplit(".", 1)[-1] for name in page_files} == {"html", "css", "js"}


def test_the_wheel_built_from_the_sdist_is_the_same(wheel: Path, release: Path) -> None:
    (sdist,) = release.glob("bria_mock-*.tar.gz")
    (from_sdist,) = release.glob("bria_mock-*.whl")
    in_sdist = sdist_names(sdist)

    assert sorted(wheel_names(from_sdist)) == sorted(wheel_names(wheel))
    assert [name for name, count in collections.Counter(in_sdist).items() if count > 1] == []
    assert "bria_mock-0.1.0/mock_server/fixtures/plugin.py" in in_sdist


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


def expect_the_checkout(report: str) -> None:
    """A probe's report says every module came from this checkout's files, through one package path."""
    found = json.loads(report)
    assert found["origins"] == {
        "mock_server.fixtures.plugin": str(ROOT / "fixtures" / "plugin.py"),
        "mock_server.contract_tests.strategies": str(ROOT / "contract_tests" / "strategies.py"),
        "mock_server.contract": str(ROOT / "mock_server" / "contract.py"),
    }
    assert found["path"] == [str(ROOT / "mock_server")]  # nothing appended to the package's path
    assert found["schema"] == str(ROOT / "schemas" / "error.json")


def test_a_source_checkout_imports_the_modules_the_wheel_ships() -> None:
    # Run from the checkout: its own folder comes first on sys.path, before any installed copy.
    expect_the_checkout(run(sys.executable, "-c", PROBE, cwd=ROOT))


def test_an_editable_install_imports_the_modules_the_wheel_ships(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "-e", str(ROOT))

    expect_the_checkout(run(str(python), "-c", PROBE, cwd=tmp_path))
