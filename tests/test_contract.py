import copy
import json

import pytest

from geopool.contract import SEN1FLOODS11, InputSpec, ModelContract, load_contract
from geopool.errors import ContractError
from geopool.fixture_models import FIXTURES_DIR, fixture_names


def _config() -> dict:
    return json.loads((FIXTURES_DIR / "prithvi-tiny-tl" / "config.json").read_text())


@pytest.mark.parametrize("name", fixture_names())
def test_every_fixture_has_the_sen1floods11_contract(name):
    assert load_contract(FIXTURES_DIR / name) == SEN1FLOODS11


def test_output_shape_is_derived_from_the_target_and_classes():
    contract = ModelContract(
        inputs=(InputSpec("img", (4, 64, 96)), InputSpec("coords", (1, 2))), target="img", num_classes=5
    )
    assert contract.output_shape == (1, 5, 64, 96)
    assert contract.output_elements == 5 * 64 * 96


def _without(path: list[str]):
    def edit(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


def _set(path: list[str], value):
    def edit(config: dict) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


MODEL_ARGS = ["pretrained_cfg", "model", "init_args", "model_args"]
DATA = ["pretrained_cfg", "input", "data"]

BAD_CONFIGS = {
    "no pretrained_cfg": (_without(["pretrained_cfg"]), "missing field 'pretrained_cfg'"),
    "no input": (_without(["pretrained_cfg", "input"]), "'pretrained_cfg.input'"),
    "no data": (_without(["pretrained_cfg", "input", "data"]), "'pretrained_cfg.input.data'"),
    "empty data": (_set(DATA, {}), "no inputs"),
    "no model": (_without(["pretrained_cfg", "model"]), "'pretrained_cfg.model'"),
    "no model_args": (_without(MODEL_ARGS), "model_args"),
    "no num_classes": (_without([*MODEL_ARGS, "num_classes"]), "num_classes"),
    "num_classes text": (_set([*MODEL_ARGS, "num_classes"], "2"), "num_classes"),
    "num_classes zero": (_set([*MODEL_ARGS, "num_classes"], 0), "num_classes"),
    "num_classes bool": (_set([*MODEL_ARGS, "num_classes"], True), "num_classes"),
    "shape text": (_set([*DATA, "pixel_values", "shape"], "6x512x512"), "pixel_values.shape"),
    "shape negative": (_set([*DATA, "pixel_values", "shape"], [6, -1, 512]), "pixel_values.shape"),
    "shape empty": (_set([*DATA, "pixel_values", "shape"], []), "pixel_values.shape"),
    "wrong type": (_set([*DATA, "pixel_values", "type"], "numpy"), "pixel_values.type"),
    "target unknown": (_set(["pretrained_cfg", "input", "target"], "rgb"), "target 'rgb'"),
    "target rank 1": (_set([*DATA, "pixel_values", "shape"], [6]), "(H, W)"),
    "input not object": (_set(DATA, [1, 2]), "pretrained_cfg.input.data"),
}


@pytest.mark.parametrize("edit, message", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_invalid_configs_name_the_bad_field(edit, message, tmp_path):
    config = copy.deepcopy(_config())
    edit(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ContractError, match=r".*") as info:
        load_contract(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not valid JSON"), ("[1, 2]", "JSON object"), (b"\xff\xfe", "cannot be read")],
)
def test_unreadable_configs(content, message, tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(ContractError, match=message):
        load_contract(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "nope.json")


def test_overrides_are_validated():
    assert SEN1FLOODS11.with_overrides(input_dtype="float16").input_dtype == "float16"
    assert SEN1FLOODS11.with_overrides(num_classes=None) == SEN1FLOODS11
    with pytest.raises(ContractError, match="input_dtype"):
        SEN1FLOODS11.with_overrides(input_dtype="int8")
    with pytest.raises(ContractError, match="num_classes"):
        SEN1FLOODS11.with_overrides(num_classes=-3)
