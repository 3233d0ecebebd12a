"""Root conftest: geopool's pytest plugins for both the project's tests and the conformance suite.

An installed geopool also registers both plugins through its ``pytest11`` entry points, under their module
names, so pytest finds them registered already and skips these; the list serves a checkout on
``PYTHONPATH`` (or an older install) without the entry points.
"""

pytest_plugins = ["geopool.pytest_plugin", "geopool.conformance.plugin", "pytester"]
