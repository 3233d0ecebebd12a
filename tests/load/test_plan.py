"""The run plan: frozen data that survives Locust's message passing unchanged."""

from __future__ import annotations

import json

import pytest

from geopool.errors import InvalidArgument
from geopool.load.run.plan import Plan
from geopool.load.scenario import Scenario, Stage


def _plan(**changes) -> Plan:
    scenario = Scenario("step", mode="open", rate=2.0, duration_s=30.0, warmup_s=0.0, request_timeout_s=50.0,
                        stages=(Stage(10.0, 1, 1.0), Stage(30.0, 1, 3.0)))
    values = {"scenario": scenario, "host": "http://127.0.0.1:8000/", "input_dtype": "float16",
              "model": "m", "model_config": "fixtures/models/x/config.json", "reference_checkpoint": "ckpt",
              "api_key": "sekrit", "slot": 1, "slots": 3}
    return Plan(**{**values, **changes})


def test_plan_round_trips_through_a_json_message():
    plan = _plan()
    message = json.loads(json.dumps(plan.to_message()))  # what Locust's message passing keeps
    assert Plan.from_message(message) == plan
    assert message["api_key"] == "sekrit" and message["slot"] == 1 and message["slots"] == 3


def test_plan_without_optional_fields_round_trips():
    plan = _plan(model=None, model_config=None, reference_checkpoint=None, api_key=None, slot=0, slots=1)
    assert Plan.from_message(plan.to_message()) == plan


def test_plan_gives_the_endpoint_and_never_shows_the_key():
    plan = _plan()
    endpoint = plan.endpoint
    assert endpoint.base_url == "http://127.0.0.1:8000"
    assert endpoint.headers(content_type="application/json")["Authorization"] == "Bearer sekrit"
    assert endpoint.timeout.read == 50.0 and endpoint.timeout.connect == 10.0
    assert plan.grace_s == 30.0 and _plan(scenario=Scenario("c", request_timeout_s=5.0)).grace_s == 5.0
    assert "sekrit" not in repr(plan)


def test_slots_are_checked_and_replaced():
    with pytest.raises(InvalidArgument, match=r"slot=3 is not in 0\.\.slots-1"):
        _plan(slot=3, slots=3)
    assert _plan().for_slot(0, 2).slots == 2
    assert _plan().with_model("other").model == "other"
