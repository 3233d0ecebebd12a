"""Image-to-image load mode without a server: the GeoTIFF pool, the answer check, the options and the report.

Answers here are GeoTIFFs written with rasterio in the plugin's documented envelope: these are unit tests
of geopool's verifier (a correct answer passes, a shifted transform fails), not of vLLM.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from argparse import ArgumentParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geopool import exitcodes
from geopool.errors import ConfigError
from geopool.geotiff import raster_facts
from geopool.load.judge.verify import HTTP_ERROR, OK, VERIFY_FAILED
from geopool.load.report import run_report
from geopool.load.run import options
from geopool.load.run.command import check_load_values
from geopool.load.run.io_payloads import build_io_pool, input_spec, io_summary, verify_io_response
from geopool.load.run.plan import Plan
from geopool.load.run.runtime import configure
from geopool.load.run.worker import Worker
from geopool.load.scenario import Scenario

URL = "http://127.0.0.1:9"


def answer_body(source, tmp_path: Path, *, shift_m: float = 0.0, dtype: str = "uint8", values=(0, 255),
                size: tuple[int, int] | None = None) -> bytes:
    """The plugin's answer envelope around a GeoTIFF written with rasterio: ``source``'s georeferencing
    (its origin moved ``shift_m`` metres east), one band of class values, nodata 0."""
    height, width = size or (source.height, source.width)
    a, _, c, _, e, f = source.transform
    path = tmp_path / "answer.tif"
    pixels = np.resize(np.array(values, dtype=dtype), (1, height, width))
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=1, dtype=dtype,
                       crs=source.crs, transform=from_origin(c + shift_m, f, a, -e), nodata=0,
                       compress="lzw") as dataset:
        dataset.write(pixels)
    encoded = base64.b64encode(path.read_bytes()).decode()
    return json.dumps({"request_id": "pooling-1", "created_at": 1,
                       "data": {"data_format": "b64_json", "data": encoded, "request_id": "pooling-1"}}).encode()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    return folder, build_io_pool(Scenario("io", pool_size=3, seed=7), "m", folder)


# ------------------------------------------------------------------------------------------- the pool


def test_the_pool_is_geotiffs_named_by_absolute_path_each_with_its_own_transform(pool):
    folder, items = pool
    assert [item.index for item in items] == [0, 1, 2]
    for item in items:
        body = json.loads(item.body)
        assert body == {"model": "m", "data": {"data": str(item.path), "data_format": "path",
                                               "out_data_format": "b64_json"}}
        assert item.path.is_absolute() and item.path.parent == folder.resolve()
        assert item.facts == raster_facts(item.path)  # what the answer must repeat, read back from the file
        assert (item.facts.width, item.facts.height, item.facts.count, item.facts.dtypes) == (512, 512, 6,
                                                                                             ("int16",) * 6)
    assert len({item.facts.transform for item in items}) == 3  # a swapped answer cannot pass
    assert not list(folder.glob(".*partial"))


def test_the_same_seed_writes_the_same_files_again(pool, tmp_path):
    items = pool[1]
    again = build_io_pool(Scenario("io", pool_size=3, seed=7), "m", tmp_path)
    assert [item.path.read_bytes() for item in again] == [item.path.read_bytes() for item in items]
    assert len(build_io_pool(Scenario("io", payload="seed", seed=7), "m", tmp_path)) == 1


# ------------------------------------------------------------------------------------------- the check


def test_a_correct_answer_passes(pool, tmp_path):
    source = pool[1][0].facts
    assert verify_io_response(200, answer_body(source, tmp_path), source) == (OK, "")


def test_an_answer_with_a_shifted_transform_fails_naming_the_transform(pool, tmp_path):
    source = pool[1][0].facts
    verdict, detail = verify_io_response(200, answer_body(source, tmp_path, shift_m=10.0), source)
    assert verdict == VERIFY_FAILED
    assert detail.startswith("transform (10.0, 0.0, 500010.0, ") and "the input's is (10.0, 0.0, 500000.0, " in detail


def test_another_inputs_answer_fails(pool, tmp_path):
    first, second = pool[1][0].facts, pool[1][1].facts
    verdict, detail = verify_io_response(200, answer_body(second, tmp_path), first)
    assert verdict == VERIFY_FAILED and "transform" in detail


@pytest.mark.parametrize(("changes", "named"), [
    ({"size": (256, 512)}, "size 512x256, the input's is 512x512"),
    ({"dtype": "uint16"}, "1 band(s) of uint16, not 1 of uint8"),
    ({"values": (0, 7)}, "values [7.0] are not class indices"),
], ids=["size", "dtype", "values"])
def test_an_answer_of_the_wrong_shape_or_values_fails(pool, tmp_path, changes, named):
    source = pool[1][0].facts
    verdict, detail = verify_io_response(200, answer_body(source, tmp_path, **changes), source)
    assert verdict == VERIFY_FAILED and named in detail


@pytest.mark.parametrize(("status", "body", "verdict", "named"), [
    (500, b'{"error": "boom"}', HTTP_ERROR, "HTTP 500: "),
    (200, b"\xff not json", VERIFY_FAILED, "malformed: the answer is not JSON"),
    (200, b'{"request_id": "r", "created_at": 1}', VERIFY_FAILED, "malformed: the answer has no 'data'"),
    (200, b'{"request_id": "r", "created_at": 1, "data": {"data_format": "b64_json", "data": "@@"}}',
     VERIFY_FAILED, "not valid base64"),
    (200, b'{"request_id": "r", "created_at": 1, "data": {"data_format": "b64_json", "data": "aGVsbG8="}}',
     VERIFY_FAILED, "not a raster rasterio can open"),
    (200, b'{"request_id": "r", "created_at": 1, "data": {"data_format": "path", "data": "/x/r.tiff"}}',
     VERIFY_FAILED, "a server path ('/x/r.tiff')"),
], ids=["http-error", "not-json", "no-data", "bad-base64", "not-a-raster", "a-path"])
def test_what_is_not_a_geotiff_answer_is_named(pool, status, body, verdict, named):
    found, detail = verify_io_response(status, body, pool[1][0].facts)
    assert found == verdict and named in detail


def test_the_worker_of_an_image_to_image_plan_sends_the_pool_and_verifies_with_its_facts(pool, tmp_path):
    folder, items = pool
    plan = Plan(scenario=Scenario("io", pool_size=3, seed=7, max_requests=3), host=URL, input_dtype=None,
                model="m", mode="image-to-image", io_input_dir=str(folder))
    worker = Worker.prepare(plan)
    assert worker.contract is None and [item.facts for item in worker.pool] == [item.facts for item in items]
    answers = {item.index: answer_body(item.facts, tmp_path) for item in items}

    class Answer:
        def __init__(self, body):
            self.status_code, self.body = 200, body

        def read(self):
            return self.body

        def release(self):
            pass

    class HTTP:
        def request(self, method, path, body, headers):
            index = int(json.loads(body)["data"]["data"].removesuffix(".tif").rsplit("-", 1)[1])
            return Answer(answers[0 if index == 2 else index])  # item 2 gets item 0's answer

    verdicts = [worker.send(worker.next_job(), HTTP(), "/pooling")[0].verdict for _ in range(3)]
    assert verdicts == [OK, OK, VERIFY_FAILED]  # item 2's input has another transform than item 0's


# ------------------------------------------------------------------------------------------- options


class LocustParser(ArgumentParser):
    """Locust's parser as far as geopool uses it: it also takes env_var, is_secret and include_in_web_ui."""

    def add_argument(self, *args, **kwargs):
        for key in ("env_var", "is_secret", "include_in_web_ui"):
            kwargs.pop(key, None)
        return super().add_argument(*args, **kwargs)


def _locust(*argv):
    parser = LocustParser()
    options.add_locust_arguments(parser)
    parsed = vars(parser.parse_args(list(argv)))
    return SimpleNamespace(**parsed, num_users=None, run_time=None, processes=None, host=None, spawn_rate=None)


def test_the_locust_path_takes_the_mode_and_needs_no_dtype(tmp_path):
    settings = configure(_locust(
        "--mode", "image-to-image", "--io-input-dir", str(tmp_path / "in"), "--plugin", "loopfix",
        "--report-dir", str(tmp_path / "r")), URL)
    plan = settings.plan
    assert (plan.mode, plan.io_input_dir, plan.io_plugin, plan.input_dtype) == (
        "image-to-image", str((tmp_path / "in").resolve()), "loopfix", None)
    assert Plan.from_message(plan.to_message()) == plan  # what a distributed run's workers get


def _values(**changes):
    values = {entry.dest: entry.default for entry in options.OPTIONS}
    return {**values, "base_url": URL, "mode": "image-to-image", **changes}


@pytest.mark.parametrize(("changes", "named"), [
    ({}, "--mode image-to-image against a URL needs --io-input-dir DIR"),
    ({"io_input_dir": "in", "plugin": "stock"}, "--plugin picks the embedded server's IO-processor plugin"),
    ({"io_input_dir": "in", "verify": "reference", "reference_checkpoint": "c"}, "--verify reference compares"),
    ({"io_input_dir": "in", "response_encoding": "bytes"}, "--response-encoding bytes is a tensor-to-tensor"),
    ({"mode": "tensor-to-tensor", "input_dtype": "float32", "io_input_dir": "in"}, "are for --mode image-to-image"),
], ids=["no-input-dir", "plugin-with-url", "verify-reference", "bytes", "input-dir-in-tensor-mode"])
def test_what_image_to_image_cannot_do_is_a_usage_error(changes, named):
    with pytest.raises(ConfigError, match=named):
        check_load_values(_values(**changes), embedded=False)


def test_image_to_image_needs_neither_input_dtype_nor_an_input_dir_when_embedded():
    assert check_load_values(_values(io_input_dir="in"), embedded=False).name == "closed"
    assert check_load_values(_values(plugin="stock"), embedded=True).name == "closed"


def test_the_command_line_without_an_input_dir_exits_with_the_usage_code_and_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "geopool.cli", "load", "--mode", "image-to-image", "--base-url",
                             URL, "--duration", "20", "--report-dir", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == exitcodes.USAGE
    assert result.stderr.strip().splitlines() == [
        "error: --mode image-to-image against a URL needs --io-input-dir DIR: a folder the server reads by the "
        "same absolute paths (the GeoTIFFs are sent by path)"]
    assert "Traceback" not in result.stdout + result.stderr and not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------- report


def test_the_summary_names_the_plugin_and_the_inputs():
    scenario = Scenario("io", pool_size=4)
    embedded = io_summary(scenario, "/in", "geopool")
    assert embedded["plugin"].startswith("geopool_segmentation = terratorch_segmentation + geopool's fixes")
    assert embedded["inputs"] == 4 and embedded["raster"] == "512x512, 6 bands of int16, EPSG:32633"
    through = f"image-to-image through {embedded['plugin']}"
    assert run_report.mode_text({"mode": "image-to-image", "io": embedded}) == through
    assert run_report.mode_text({"mode": "image-to-image", "io": io_summary(scenario, "/in", None)}) == (
        "image-to-image through the server's IO-processor plugin (a server at a URL does not name it)")
    assert run_report.mode_text({"mode": "tensor-to-tensor"}) == "tensor-to-tensor"
    assert run_report.mode_text({}) is None  # a summary written before modes existed
    assert input_spec(0, 1).x0 - input_spec(0, 0).x0 == 5120.0
