"""Where the data that ships with geopool lives — the one module that knows.

The data stays in the top-level folders users know; the build (``[tool.setuptools] package-dir`` in
``pyproject.toml``) ships each folder as a package of its own::

    source folder                          installed package       read through
    conformance/  (test modules,           geopool_conformance     suite_dir(), registry_file(),
      conftest.py, requirements.toml,                              expectations_files()
      expectations/*.toml)
    load/scenarios.toml, load/slo/*.toml   geopool_load            scenarios_file(), slo_examples()
    fixtures/models/<name>/config.json     geopool_fixtures        fixture_models_dir(), fixture_configs()
    geopool/load/report/report.html.j2     geopool.load.report     report_template()
    geopool/{load/report,conformance,gate}/*.j2  (the same)        templates(), template_folder()

An installed geopool finds them through the import system: each data package's own locations
(``importlib.util.find_spec``), and :func:`importlib.resources.files` for the template. When geopool itself is imported
from a source checkout (an editable install, or ``PYTHONPATH=checkout``), the checkout's folders are used,
so that code and data always come from the same tree: a worktree on ``PYTHONPATH`` must not read the
data of another checkout that happens to be installed editable in the same venv.

Everything is returned as a :class:`pathlib.Path`, because pytest, Jinja, TOML readers and vLLM need
real files; pip installs wheels unzipped, so they are. Reports are not shipped data: they go to
``./reports`` under the current directory (:func:`reports_dir`), never into the installed package.

    >>> registry_file().name
    'requirements.toml'
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
from pathlib import Path

from geopool.errors import InstallError

__all__ = [
    "DATA_PACKAGES",
    "SUITE_PACKAGE",
    "expectations_dir",
    "expectations_files",
    "fixture_configs",
    "fixture_models_dir",
    "registry_file",
    "report_template",
    "reports_dir",
    "scenarios_file",
    "shipped_files",
    "slo_examples",
    "suite_dir",
    "template_folder",
    "templates",
]

#: The conformance suite as an importable package: ``pytest -p geopool.pytest_plugin
#: -p geopool.conformance.plugin --pyargs geopool_conformance`` runs it from an installed geopool.
SUITE_PACKAGE = "geopool_conformance"

#: Installed data package → its folder in the source tree (pyproject.toml's ``package-dir``).
DATA_PACKAGES = {SUITE_PACKAGE: "conformance", "geopool_load": "load", "geopool_fixtures": "fixtures"}
#: A file or folder that is always in each data package.
_ANCHORS = {SUITE_PACKAGE: "requirements.toml", "geopool_load": "scenarios.toml", "geopool_fixtures": "models"}


@functools.cache
def _checkout() -> Path | None:
    """The source checkout geopool was imported from, or None for an installed geopool."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and all((root / folder / _ANCHORS[package]).exists()
                                                     for package, folder in DATA_PACKAGES.items()):
        return root
    return None


@functools.cache
def _root(package: str) -> Path:
    if (checkout := _checkout()) is not None:
        # Also what serves an editable install, where files() of the namespace packages fails on
        # Python 3.11: their __path__ holds setuptools' path-hook placeholder, which is not a folder.
        return checkout / DATA_PACKAGES[package]
    # The package's own search locations, not importlib.resources.files(): geopool_load and
    # geopool_fixtures are namespace packages (no __init__.py), and beside an editable install of
    # another checkout their __path__ also holds setuptools' path-hook placeholder, which files()
    # (a MultiplexedPath) refuses. The first location that holds the package's anchor is the install.
    spec = importlib.util.find_spec(package)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(location) / _ANCHORS[package]).exists():
            return Path(location)
    raise InstallError(f"geopool's data package {package} is not installed as files (missing, or zipped): "
                       "install geopool with pip, which unpacks it")


def suite_dir() -> Path:
    """The conformance suite: its test modules, conftest.py, requirements.toml and expectations/."""
    return _root(SUITE_PACKAGE)


def registry_file() -> Path:
    """The requirements registry, ``requirements.toml``."""
    return suite_dir() / "requirements.toml"


def expectations_dir() -> Path:
    """The folder of expected-failure files, one per server version range."""
    return suite_dir() / "expectations"


def expectations_files() -> list[Path]:
    """Every expected-failure file (``expectations/*.toml``), sorted."""
    return sorted(expectations_dir().glob("*.toml"))


def scenarios_file() -> Path:
    """The load scenarios, ``load/scenarios.toml``."""
    return _root("geopool_load") / "scenarios.toml"


def slo_examples() -> list[Path]:
    """The example SLO files (``load/slo/*.toml``), sorted."""
    return sorted((_root("geopool_load") / "slo").glob("*.toml"))


def fixture_models_dir() -> Path:
    """The folder holding one folder per fixture model, each with its TerraTorch ``config.json``."""
    return _root("geopool_fixtures") / "models"


def fixture_configs() -> list[Path]:
    """Every fixture model's ``config.json``, sorted by model name."""
    return sorted(fixture_models_dir().glob("*/config.json"))


def report_template() -> Path:
    """The Jinja template of a load run's ``report.html``."""
    found = importlib.resources.files("geopool.load.report") / "report.html.j2"
    if not isinstance(found, Path):
        raise InstallError("geopool is not installed as files (a zip?): install it with pip, which unpacks it")
    return found


#: The packages whose Jinja templates (``*.j2``) draw geopool's HTML reports: the load run's page, the
#: conformance run's page, the gate's page (which imports the other two's sections).
TEMPLATE_PACKAGES = ("geopool.load.report", "geopool.conformance", "geopool.gate")


def template_folder(package: str) -> Path:
    """The folder of a package's Jinja templates (one of :data:`TEMPLATE_PACKAGES`)."""
    found = importlib.resources.files(package)
    if not isinstance(found, Path):
        raise InstallError("geopool is not installed as files (a zip?): install it with pip, which unpacks it")
    return found


def templates() -> list[Path]:
    """Every Jinja template of geopool's HTML reports."""
    return sorted(path for package in TEMPLATE_PACKAGES for path in template_folder(package).glob("*.j2"))


def shipped_files() -> list[Path]:
    """Every data file geopool ships and reads (not the conformance test modules themselves)."""
    return [registry_file(), *expectations_files(), scenarios_file(), *slo_examples(), *fixture_configs(),
            *templates()]


def reports_dir() -> Path:
    """Where logs, killer payloads and reports go: ``reports/`` under the current directory, read at each
    call (commands run from the repository root write to the checkout's ``reports/``)."""
    return Path.cwd() / "reports"
