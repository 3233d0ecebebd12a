"""geopool: conformance and load testing for vLLM /pooling servers running TerraTorch models."""

__version__ = "0.1.0"
