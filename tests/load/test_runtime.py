"""The per-process runtime that ties Locust's events to the master and worker, without a server."""

from __future__ import annotations

import time
from types import SimpleNamespace

from geopool.load.judge import slo
from geopool.load.run.master import RunSettings
from geopool.load.run.plan import Plan
from geopool.load.run.runtime import Runtime
from geopool.load.scenario import Scenario


def _probe_ok(endpoint):
    return {"url": endpoint.base_url, "vllm_version": "0.32.0", "models": ["served"]}


def _scrape(endpoint):
    return {"t": 0.0, "error": "no metrics here"}


def test_a_local_worker_that_cannot_prepare_ends_the_run_at_once(tmp_path):
    """A bad --model-config fails the run as a usage error, and closing does not wait for a final batch
    from a worker that never started (the grace here would be 30 s)."""
    plan = Plan(scenario=Scenario("c", duration_s=10.0, warmup_s=0.0, request_timeout_s=120.0),
                host="http://127.0.0.1:1", input_dtype="float32", model_config=str(tmp_path / "missing.json"))
    runner = SimpleNamespace(quit=lambda: None, stats=None)
    runtime = Runtime(RunSettings(plan, None, tmp_path / "run"), probe=_probe_ok, scrape=_scrape)
    runtime.start_run(runner, distributed=False)
    assert runtime.worker is None
    started = time.monotonic()
    runtime.close_run()
    assert time.monotonic() - started < 5
    assert runtime.master is not None and runtime.master.missing_slots == []
    runtime.finish_run(None)
    assert runtime.exit_code == slo.EXIT_USAGE
    assert "missing.json" in (tmp_path / "run" / "summary.json").read_text()
