"""A tiny conformance suite's setup for pytester runs of geopool's plugin: the flags that load it, and a
conftest whose stand-in target lets the ledger and the reports run without a server."""

PLUGINS = ("-p", "geopool.pytest_plugin", "-p", "geopool.conformance.plugin", "-p", "no:cacheprovider",
           "-o", "asyncio_default_fixture_loop_scope=function")

CONFTEST = '''
import pytest
from geopool.conformance import plugin


class StandInTarget:
    """Where a target would be; the tiny suites never send a request."""
    server = None
    embedded = True
    version = "0.32.0"
    url = "http://127.0.0.1:9"
    model = "stand-in"

    def describe(self):
        return {"url": self.url, "model": self.model, "vllm_version": self.version, "embedded": True}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session):
    session.config.stash[plugin.TARGET_KEY] = StandInTarget()
'''
