"""The server under test: an external URL, or the embedded server the suite starts and owns."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import httpx

from geopool.client import PROBE_TIMEOUT, Endpoint, PoolingClient
from geopool.contract import ModelContract, load_contract
from geopool.errors import GeopoolError, InvalidArgument, TargetError
from geopool.i2i_plugin import PLUGINS as IO_PLUGINS
from geopool.modes import IMAGE_TO_IMAGE, TENSOR_TO_TENSOR
from geopool.numerics import bounds_for
from geopool.options import missing_input_dtype
from geopool.preflight import refusal
from geopool.server import DEFAULT_PLUGIN, EmbeddedServer, terratorch_version

__all__ = ["Target", "TargetError", "resolve_target"]


@dataclasses.dataclass
class Target:
    url: str
    model: str
    contract: ModelContract
    version: str | None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    server: EmbeddedServer | None = None
    reference_dir: Path | None = None
    #: ``--numeric-bounds`` as given (auto, same-kernels, other-kernels); see :attr:`kernels`.
    numeric_bounds: str = "auto"
    mode: str = TENSOR_TO_TENSOR
    #: Image-to-image: the plugin the server runs (a --plugin choice; the embedded server's is known, a
    #: URL's is what the user said), TerraTorch's version (likewise), and a folder this machine writes
    #: input GeoTIFFs into that the server reads by the same paths (None: no shared folder is known).
    plugin: str | None = None
    terratorch_version: str | None = None
    io_input_dir: Path | None = None
    #: The plain httpx client of :meth:`http` (None until first used).
    _http: httpx.Client | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def image_to_image(self) -> bool:
        return self.mode == IMAGE_TO_IMAGE

    @property
    def plugin_description(self) -> str | None:
        if self.plugin is None:
            return None
        described = IO_PLUGINS[self.plugin][1]
        told = "" if self.embedded else " (as told with --plugin/--terratorch-version)"
        return f"{described}; terratorch {self.terratorch_version or '(unknown)'}{told}"

    @property
    def embedded(self) -> bool:
        return self.server is not None

    @property
    def kernels(self) -> str:
        """Which served-vs-reference bounds apply (geopool.numerics): same-kernels or other-kernels."""
        return bounds_for(self.numeric_bounds, embedded=self.embedded)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.url, self.api_key)

    def client(self) -> PoolingClient:
        return PoolingClient(self.endpoint)

    def http(self) -> httpx.Client:
        """One plain httpx client for the whole session, for requests whose answer is judged whatever its status
        (image-to-image bodies): built on first use, closed by :meth:`close`.

        It carries no base URL, headers or timeout of its own: each request names the full URL and takes its
        headers from :attr:`endpoint` and its own timeout, so a restarted server or a per-check bound needs no
        new client.
        """
        if self._http is None:
            self._http = httpx.Client()
        return self._http

    def close(self) -> None:
        """Close :meth:`http`'s client, if one was made."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def describe(self) -> dict:
        return {"url": self.url, "model": self.model, "vllm_version": self.version, "embedded": self.embedded,
                "input_dtype": self.contract.input_dtype, "numeric_bounds": self.kernels,
                "output_shape": list(self.contract.output_shape),
                "inputs": {spec.name: list(spec.shape) for spec in self.contract.inputs},
                "mode": self.mode, "plugin": self.plugin_description,
                "io_input_dir": str(self.io_input_dir) if self.io_input_dir else None}


def resolve_target(
    *, base_url: str | None, model: str | None, model_config: Path | None, input_dtype: str | None,
    api_key: str | None, embedded_model: str, embedded_dtype: str, reference: Path | None,
    embedded_device: str = "auto", numeric_bounds: str = "auto", mode: str = TENSOR_TO_TENSOR,
    plugin: str = DEFAULT_PLUGIN, io_input_dir: Path | None = None, terratorch: str | None = None,
) -> Target:
    """Start the embedded server (no ``base_url``) or check the external one; raise TargetError if unusable.

    Image-to-image (``mode``): the embedded server runs ``plugin`` and gets an input folder of its own under
    ``reports/``; against a URL, ``plugin``, ``terratorch`` and ``io_input_dir`` are what the user told."""
    server = None
    io = mode == IMAGE_TO_IMAGE
    if io and base_url is None:
        server = EmbeddedServer(embedded_model, dtype=embedded_dtype, device=embedded_device, mode=mode,
                                plugin=plugin).start()
        base_url, input_dtype = server.url, input_dtype or embedded_dtype
        model_config = model_config or server.model_dir
        reference = reference or server.served_dir
        terratorch = terratorch_version()
        io_input_dir = io_input_dir or (server.log_dir / f"io-in-{server.port}").resolve()
    elif io:
        input_dtype = input_dtype or "float32"  # no tensor is sent in this mode: the plugin builds them
    elif io_input_dir is not None or terratorch is not None:
        raise InvalidArgument("--io-input-dir and --terratorch-version are image-to-image options: add "
                              "--mode image-to-image")
    if io_input_dir is not None:
        io_input_dir = Path(io_input_dir).resolve()
        try:
            io_input_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if server is not None:
                server.stop()
            raise InvalidArgument(f"--io-input-dir {io_input_dir}: cannot use it as a folder: {exc}") from exc
    if base_url is None:
        # The suite's own server requires a key, so the API-key requirements (POOL-CLI-008/009) are
        # checked in every embedded run; every request of the suite sends it (Target.endpoint).
        api_key = api_key or f"geopool-{secrets.token_hex(16)}"
        server = EmbeddedServer(embedded_model, dtype=embedded_dtype, device=embedded_device,
                                extra_args=("--api-key", api_key)).start()
        base_url, input_dtype = server.url, input_dtype or embedded_dtype
        model_config = model_config or server.model_dir
        reference = reference or server.served_dir
    if input_dtype is None:  # a usage error, before any request: the same code as load's and the gate's
        raise InvalidArgument(missing_input_dtype(base_url))
    try:
        with PoolingClient(Endpoint(base_url, api_key, PROBE_TIMEOUT)) as client:
            try:
                healthy = client.health()
            except GeopoolError as exc:
                raise TargetError(f"conformance target {base_url} is not reachable: {exc}") from exc
            if not healthy:
                raise TargetError(f"conformance target {base_url} is up but /health does not answer 200")
            if model is None:
                models = client.models()
                if len(models) != 1:
                    raise TargetError(f"{base_url}/v1/models lists {models!r}; pass --model to pick one")
                model = models[0]
            try:
                version = client.version()
            except GeopoolError:
                version = None  # POOL-EP-002 reports it
        contract = load_contract(model_config, input_dtype=input_dtype)
        if server is None and not io:  # the embedded server is started from the contract's own model
            refused = refusal(Endpoint(base_url, api_key), contract, model)
            if refused:
                raise TargetError(f"conformance target {base_url}: {refused}")
    except BaseException:
        if server is not None:
            server.stop()
        raise
    return Target(base_url, model, contract, version, api_key, server, reference, numeric_bounds, mode,
                  plugin if io else None, terratorch if io else None, io_input_dir if io else None)
