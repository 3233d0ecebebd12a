"""geopool.wire.request: one path from arrays to a body, and one accessor for where the inputs sit."""

from __future__ import annotations

import numpy as np

from geopool import wire
from geopool.contract import SEN1FLOODS11


def test_request_body_is_the_seed_body_of_the_encoded_arrays():
    arrays = wire.seed_inputs(SEN1FLOODS11)
    body = wire.request_body("m", arrays, dtype="float32", fmt="npy", embed_dtype="float16", endianness="big")
    assert body == wire.pooling_request("m", wire.encode_inputs(arrays, dtype="float32", fmt="npy"),
                                        embed_dtype="float16", endianness="big")
    assert set(wire.image_embeds(body)) == {"pixel_values", "location_coords"}
    decoded = wire.load_tensor_bytes(wire.base64_bytes(wire.image_embeds(body)["location_coords"]))
    np.testing.assert_array_equal(decoded, np.ones((1, 2), np.float32))


def test_image_embeds_is_the_body_own_dict():
    body = wire.pooling_request("m", {"pixel_values": "AA==", "location_coords": "AQ=="})
    assert wire.image_part(body)["type"] == wire.IMAGE_EMBEDS
    assert wire.image_embeds(body) == {"pixel_values": "AA==", "location_coords": "AQ=="}
    assert wire.set_image_embed(body, "pixel_values", [1.0]) is body
    del wire.image_embeds(body)["location_coords"]
    assert body["messages"][0]["content"][0]["image_embeds"] == {"pixel_values": [1.0]}


def test_pooling_request_copies_the_inputs():
    encoded = {"pixel_values": "AA=="}
    body = wire.pooling_request("m", encoded)
    wire.set_image_embed(body, "pixel_values", "AQ==")
    assert encoded == {"pixel_values": "AA=="}
