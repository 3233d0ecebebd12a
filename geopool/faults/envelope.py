"""Faults that edit the JSON envelope of pooling answers, or swap outputs between answers."""

from __future__ import annotations

import asyncio
import json

from geopool.faults.base import Exchange, Fault


class _EnvelopeFault(Fault):
    def edit(self, body: dict, exchange: Exchange) -> None:
        raise NotImplementedError

    async def response(self, exchange):
        if exchange.ok_json:
            body = json.loads(exchange.body)
            self.edit(body, exchange)
            exchange.set_json(body)


class ExtraData(_EnvelopeFault):
    name, summary = "extra-data", "data[] gets a second copy of its entry"

    def edit(self, body, exchange):
        body["data"].append(dict(body["data"][0], index=1))


class MissingData(_EnvelopeFault):
    name, summary = "missing-data", "data[] is empty"

    def edit(self, body, exchange):
        body["data"] = []


class WrongIndex(_EnvelopeFault):
    name, summary = "wrong-index", "data[0].index is 1"

    def edit(self, body, exchange):
        body["data"][0]["index"] = 1


class DropField(_EnvelopeFault):
    name, summary = "drop-field", "an envelope field is removed (param: field [id]; usage.total_tokens allowed)"
    text_params = True

    def edit(self, body, exchange):
        path = (self.params[0] if self.params else "id").split(".")
        parent = body
        for key in path[:-1]:
            parent = parent.get(key, {})
        parent.pop(path[-1], None)


class RetypeField(_EnvelopeFault):
    name, summary = "retype-field", "an envelope field becomes a string (param: field [created])"
    text_params = True

    def edit(self, body, exchange):
        path = (self.params[0] if self.params else "created").split(".")
        parent = body
        for key in path[:-1]:
            parent = parent.get(key, {})
        if path[-1] in parent:
            parent[path[-1]] = str(parent[path[-1]]) + "x"


class WrongModel(_EnvelopeFault):
    name, summary = "wrong-model", "the answer names another model"

    def edit(self, body, exchange):
        body["model"] = f"{body.get('model')}-other"


class DropRequestId(_EnvelopeFault):
    name, summary = "drop-request-id", "the answer's id ignores X-Request-Id"

    def edit(self, body, exchange):
        body["id"] = f"pooling-{self.random.getrandbits(64):016x}"


# ------------------------------------------------------------------------------ answer swapping


class IgnoreInput(Fault):
    name, summary = "ignore-input", "every pooling answer is the first one's output"

    def __init__(self, *params):
        super().__init__(*params)
        self.first: bytes | None = None

    async def response(self, exchange):
        if exchange.ok_json:
            self.first = self.first or exchange.body
            exchange.body = _with_envelope_of(exchange.body, self.first)


class Stale(Fault):
    name, summary = "stale", "every pooling answer carries the previous request's output"

    def __init__(self, *params):
        super().__init__(*params)
        self.previous: bytes | None = None

    async def response(self, exchange):
        if exchange.ok_json:
            current, exchange.body = exchange.body, _with_envelope_of(exchange.body, self.previous or exchange.body)
            self.previous = current


class Swap(Fault):
    name, summary = "swap", "answers of concurrent pooling requests are exchanged (window param: seconds [1])"

    def __init__(self, *params):
        super().__init__(*params)
        self.waiting: tuple[Exchange, asyncio.Future] | None = None

    async def response(self, exchange):
        if not exchange.ok_json:
            return
        if self.waiting is None:
            future: asyncio.Future = asyncio.get_running_loop().create_future()
            self.waiting = (exchange, future)
            try:
                exchange.body = await asyncio.wait_for(asyncio.shield(future), self._float(0, 1.0))
            except TimeoutError:
                pass
            finally:
                if self.waiting and self.waiting[0] is exchange:
                    self.waiting = None
        else:
            partner, future = self.waiting
            self.waiting = None
            mine = exchange.body
            exchange.body = _with_envelope_of(mine, partner.body)
            future.set_result(_with_envelope_of(partner.body, mine))


def _with_envelope_of(envelope: bytes, outputs: bytes) -> bytes:
    """``envelope``'s answer carrying ``outputs``' data[]."""
    body, donor = json.loads(envelope), json.loads(outputs)
    body["data"] = donor.get("data", body.get("data"))
    return json.dumps(body).encode()
