"""Judging one run from its per-request records: whether each answer is right (``verify``), the exact statistics
(``stats``), the SLO gate and exit codes (``slo``), goodput and per-stage figures (``goodput``), stopping a run
whose SLO is already lost (``breach``), the server's own view from ``/metrics`` (``serverview``, which also
scrapes it), and a finished run read back from its folder (``finished_run``)."""
