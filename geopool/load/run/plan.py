"""A run's plan: what every load-generating process needs to know, as frozen data.

The master (or the only process) resolves it once from the options and the target; in a distributed
run it sends each worker its own copy with ``slot``/``slots`` set, as the dict :meth:`Plan.to_message`
gives (Locust's message passing carries plain data). The API key travels inside it, as it always has:
workers need it for their requests, and it is never printed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import httpx

from geopool.client import Endpoint
from geopool.errors import InvalidArgument
from geopool.load.scenario import Scenario, scenario_from
from geopool.modes import IMAGE_TO_IMAGE, TENSOR_TO_TENSOR

__all__ = ["CONNECT_TIMEOUT_S", "MSG_CLOSE", "MSG_PLAN", "MSG_RECORDS", "Plan"]

#: Locust message types between the master and its workers.
MSG_PLAN, MSG_CLOSE, MSG_RECORDS = "geopool_plan", "geopool_close", "geopool_records"
#: A pooling connection is made at once or not at all; the read waits ``request_timeout_s``.
CONNECT_TIMEOUT_S = 10.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """One run as a load-generating process sees it.

    ``model`` is None until the target has been probed (then the flag's or the listed one);
    ``model_config`` None means Sen1Floods11's contract; ``reference_checkpoint`` is the folder with
    config.json + .pt for ``verify = "reference"``. ``slot`` of ``slots`` is this process's share.
    ``mode`` image-to-image sends GeoTIFFs written into ``io_input_dir`` (which the server reads by the
    same paths; ``input_dtype`` is then unused); ``io_plugin`` is the embedded server's plugin choice
    (None: not known, a server at a URL).
    """

    scenario: Scenario
    host: str
    input_dtype: str | None
    model: str | None = None
    model_config: str | None = None
    reference_checkpoint: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    #: Served-vs-reference bounds of ``verify = "reference"`` (geopool.numerics): same- or other-kernels.
    numeric_bounds: str = "other-kernels"
    slot: int = 0
    slots: int = 1
    mode: str = TENSOR_TO_TENSOR
    io_input_dir: str | None = None
    io_plugin: str | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.slot < self.slots:
            raise InvalidArgument(f"slot={self.slot!r} is not in 0..slots-1 (slots={self.slots!r}); "
                                  "give each of `slots` processes one slot")
        object.__setattr__(self, "host", self.host.rstrip("/"))

    @property
    def endpoint(self) -> Endpoint:
        """Where requests go, with their auth and timeouts (connect 10 s, read ``request_timeout_s``)."""
        timeout = httpx.Timeout(self.scenario.request_timeout_s, connect=CONNECT_TIMEOUT_S)
        return Endpoint(self.host, self.api_key, timeout)

    @property
    def grace_s(self) -> float:
        """How long a closing run waits for requests in flight."""
        return self.scenario.grace_s

    @property
    def image_to_image(self) -> bool:
        return self.mode == IMAGE_TO_IMAGE

    def for_slot(self, slot: int, slots: int) -> Plan:
        return dataclasses.replace(self, slot=slot, slots=slots)

    def with_model(self, model: str | None) -> Plan:
        return dataclasses.replace(self, model=model)

    def to_message(self) -> dict[str, Any]:
        """Plain data for Locust's message passing; :meth:`from_message` reads it back."""
        return {"scenario": self.scenario.to_dict(), "host": self.host, "input_dtype": self.input_dtype,
                "model": self.model, "model_config": self.model_config,
                "reference_checkpoint": self.reference_checkpoint, "api_key": self.api_key,
                "numeric_bounds": self.numeric_bounds, "slot": self.slot, "slots": self.slots, "mode": self.mode,
                "io_input_dir": self.io_input_dir, "io_plugin": self.io_plugin}

    @classmethod
    def from_message(cls, data: Mapping[str, Any]) -> Plan:
        table = {key: value for key, value in data["scenario"].items() if key != "name"}
        return cls(scenario=scenario_from(data["scenario"]["name"], table), host=data["host"],
                   input_dtype=data["input_dtype"], model=data["model"], model_config=data["model_config"],
                   reference_checkpoint=data["reference_checkpoint"], api_key=data["api_key"],
                   numeric_bounds=data["numeric_bounds"], slot=data["slot"], slots=data["slots"], mode=data["mode"],
                   io_input_dir=data["io_input_dir"], io_plugin=data["io_plugin"])
