"""Root conftest: geopool's pytest plugins for both the project's tests and the conformance suite."""

pytest_plugins = ["geopool.pytest_plugin", "geopool.conformance.plugin", "pytester"]
