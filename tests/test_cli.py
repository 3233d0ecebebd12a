"""CLI: bad input gets one clear line and a documented exit code, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from geopool.cli import main
from geopool.server import free_port


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_contract_prints_the_sen1floods11_contract():
    result = run("contract")
    assert result.exit_code == 0
    assert "pixel_values: 6×512×512 float32 (target)" in result.output
    assert "output 1×2×512×512 (2 classes)" in result.output


def test_contract_overrides_change_the_output_shape():
    result = run("contract", "--input-shape", "pixel_values=6,64,32", "--num-classes", "4", "--input-dtype", "float16")
    assert result.exit_code == 0, result.output
    assert "output 1×4×64×32" in result.output and "float16" in result.output


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["contract", "--input-shape", "pixel_values"], "is not NAME=D1,D2", 4),
        (["contract", "--input-shape", "pixel_values=0,1"], "is not NAME=D1,D2", 4),
        (["contract", "--input-shape", "rgb=3,4"], "unknown inputs ['rgb']", 4),
        (["contract", "--input-dtype", "int8"], "'int8' is not one of", 4),
        (["contract", "--model-config", "/nonexistent/config.json"], "does not exist", 4),
        (["serve", "--embedded-model", "no-such-fixture"], "neither a folder with a config.json nor a fixture", 4),
        (["serve", "--port", "70000"], "70000 is not in the range", 4),
    ],
)
def test_bad_arguments_get_a_clear_error(args, message, code):
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_model_config_names_the_field(tmp_path):
    (tmp_path / "config.json").write_text('{"pretrained_cfg": {"input": {"data": {}}}}')
    result = run("contract", "--model-config", str(tmp_path))
    assert result.exit_code == 4 and "error:" in result.output and "no inputs" in result.output


def test_unreachable_server_is_one_line_and_exit_12():
    result = run("request", "--base-url", f"http://127.0.0.1:{free_port()}", "--model", "m", "--input-dtype", "float32")
    assert result.exit_code == 12
    assert result.output.startswith("error: /pooling: ConnectError")
    assert "Traceback" not in result.output


def test_plugin_options_are_registered(pytester):
    pytester.makepyfile("def test_x(request):\n    assert request.config.getoption('embedded_dtype') == 'float16'\n")
    result = pytester.runpytest("-p", "geopool.pytest_plugin", "--embedded-dtype", "float16",
                                "-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=1)
