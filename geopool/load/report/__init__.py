"""What a person reads: a run's summary.json and report.html (``run_report``), ``geopool compare``'s table and
compare.html (``compare_report``), sweep.html (``sweep_report``); the Jinja templates (``*.j2``) live here too."""
