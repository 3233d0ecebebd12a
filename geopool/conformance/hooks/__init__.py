"""The conformance plugin's parts, one concern each; :mod:`geopool.conformance.plugin` is the module pytest loads
and gathers their hooks and fixtures.

``options`` (the command-line options, pytest-base-url's ``--base-url``), ``session`` (is this run the suite's,
the target and expectations, the fixtures, what is skipped before a test runs), ``ledger`` (which tests check
which requirement, each phase's outcome and evidence, the JUnit properties, --strict), ``summary`` (the report
files and the terminal summary). ``stash`` holds what they share through pytest's config stash.
"""
