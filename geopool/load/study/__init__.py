"""Studies made of several runs: ``geopool compare`` (``finished_run`` reads a run back, ``comparison`` holds the
block-bootstrap statistics, ``compare`` the verdict) and ``geopool sweep`` (``sweep`` runs a load per rising
rate, ``knee`` finds where the server stops keeping up)."""
