"""Running one load: a plan (pure data) → a worker per process (schedule, payloads, send, verify, record) and a
master (slots, server view, finalizing), tied to Locust's events by ``runtime``; ``command`` is ``geopool load``."""
