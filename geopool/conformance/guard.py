"""Survival checks after bad requests, and restarts of a server the suite owns."""

from __future__ import annotations

import re
import time

import numpy as np

from geopool import wire
from geopool.client import PROBE_TIMEOUT, PoolingClient
from geopool.conformance import recipes
from geopool.conformance.checks import Checks
from geopool.conformance.target import Target
from geopool.errors import GeopoolError
from geopool.resources import reports_dir

__all__ = ["ServerGuard", "SURVIVAL_TOLERANCE"]

#: A valid request after a rejection must give the baseline answer (batching rounding at most).
SURVIVAL_TOLERANCE = 1e-4


class ServerGuard:
    """Knows what a healthy answer looks like and whether the suite may restart the server."""

    #: Whether the test running now is the session's last (the suite's plugin sets it before each test).
    last_test = False

    def __init__(self, target: Target, valid_body: dict, baseline: np.ndarray) -> None:
        self.target = target
        self.valid_body = valid_body
        self._baseline = baseline
        self.restarts = 0
        self.restart_seconds = 0.0

    def healthy(self) -> bool:
        try:
            with PoolingClient(self.target.endpoint, timeout=PROBE_TIMEOUT) as client:
                return client.health()
        except GeopoolError:
            return False

    def survives(self, checks: Checks, requirement: str, sent: str, body: bytes | None = None, *,
                 case: str | None = None) -> bool:
        """Check /health and a valid request after ``sent``; on failure, fail ``requirement`` (keeping the
        offending ``body`` under ``reports/killers/`` to replay) and restart an owned server. ``case``: the
        check's case (default: the test's, see geopool.conformance.checks)."""
        problem = "the server died: /health no longer answers 200" if not self.healthy() else None
        if problem is None:
            try:
                with self.target.client() as client:
                    problem = self.valid_answer_problem(client.pool(self.valid_body).json())
            except (GeopoolError, ValueError) as exc:
                problem = f"a valid request now fails: {exc}"
        if problem is None:
            checks.that(requirement, True, f"after {sent}: the server is healthy", case=case)  # evaluated, held
            return True
        details: dict[str, str] = {"request": sent}
        if body is not None:
            saved = reports_dir() / "killers" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', sent)[:80]}.json"
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_bytes(body)
            details["replay"] = (f"curl -X POST {self.target.url}/pooling "
                                 f"-H 'Content-Type: application/json' -d @{saved}")
        recipes.sent(body)  # what the reproducer sends first (None: unknown here, so it cannot)
        checks.fail(requirement, f"after {sent}: {problem}", case=case, expect=recipes.survives(self.valid_body),
                    **details)
        self.recover()
        return False

    def valid_answer_problem(self, answer: object) -> str | None:
        """What is wrong with the answer to :attr:`valid_body` (None: it is the baseline's)."""
        decoded = wire.decode_json_response(answer, self.target.contract.output_shape)
        distance = float(np.abs(decoded - self._baseline).max())
        if not distance <= SURVIVAL_TOLERANCE:
            return f"a valid request now gets a different answer (max |diff| {distance:.3g})"
        return None

    def recover(self) -> None:
        """Restart the owned server if it is not healthy (waiting briefly for a dying one to exit).

        Not after the session's last test: nothing would use the new server before the session stops it,
        and a restart is a vLLM start-up (~45 CPU-s, a minute or more on a busy 2-core box)."""
        if self.target.server is None or self.last_test or self.healthy():
            return
        started = time.monotonic()
        self.target.server.restart()
        self.restarts += 1
        self.restart_seconds += time.monotonic() - started
