"""The geopool conformance suite: one test module per requirement family, the registry
(requirements.toml) and the expected failures (expectations/).

In a checkout, run it from the repository root: ``pytest conformance/`` (the root conftest.py loads
geopool's plugins). An installed geopool ships this folder as the package ``geopool_conformance``
(see geopool.resources): ``pytest -p geopool.pytest_plugin -p geopool.conformance.plugin --pyargs
geopool_conformance``.
"""
