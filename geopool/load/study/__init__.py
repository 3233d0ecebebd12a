"""Studies made of several runs: ``geopool compare`` (``comparison`` holds the block-bootstrap statistics,
``compare`` the verdict, over runs read back by :mod:`geopool.load.judge.finished_run`) and ``geopool sweep``
(``sweep`` runs a load per rising rate, ``knee`` finds where the server stops keeping up)."""
