"""The conformance suite's machinery: requirement registry, expectations, checks, pytest plugin, report."""
