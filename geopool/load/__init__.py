"""The load suite: Locust scenarios for vLLM ``/pooling`` with exact, verified, gated measurements.

Data flows one way: scenario → schedule and payload pool → Locust users (send, verify, record) →
records.jsonl → statistics, server view, SLO gate → summary.json, report.html, exit code.

The rooms; each imports only from the rooms below it in this table (tests/test_architecture.py fails on
any import cycle, between modules or between these rooms):

=================  =====================================================================================
``study``          several runs: ``geopool compare`` (two runs' differences) and ``geopool sweep`` (a load run
                   per rising rate, the knee)
``run``            running one load: the plan, the workers (payloads, send, verify, record), the master
                   (slots, finalizing), Locust's runtime and parser, ``geopool load``
``report``         a run's, a comparison's and a sweep's outputs: summary.json, the HTML pages, the tables
``judge``          judging one run from its records: answer checks, exact statistics, the server's own view
                   (``/metrics``), the SLO gate, goodput, stop on breach, a finished run read back
``scenario``,      what every room reads: the run's description (``Scenario``), its arrival times, and the
``schedule``,      per-request record with its ``records.jsonl`` form
``records``
=================  =====================================================================================
"""
