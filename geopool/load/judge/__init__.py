"""Judging one run from its per-request records: whether each answer is right (``verify``), the exact statistics
(``stats``), the SLO gate and exit codes (``slo``), goodput and per-stage figures (``goodput``), and stopping a
run whose SLO is already lost (``breach``). Nothing here sends a request or writes a file."""
