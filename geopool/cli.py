"""``geopool`` command line: serve the embedded model, send the seed request, show a contract.

Errors geopool raises on purpose are printed as one ``error: ...`` line — never a traceback — and the
exit code comes from geopool's one table (:mod:`geopool.exitcodes`): 4 for bad usage or config, 12 when
a server cannot be reached or started, 1 when an answer is wrong.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
import numpy as np

from geopool import exitcodes, wire
from geopool import options as shared
from geopool.client import PoolingClient
from geopool.contract import InputSpec, ModelContract, load_contract
from geopool.errors import (
    ERROR_PREFIX,
    CheckpointError,
    ConfigError,
    ContractError,
    EmbeddedServerError,
    FaultSpecError,
    GeopoolError,
    InstallError,
    InvalidArgument,
    MissingDependencyError,
    RegistryError,
    ServerError,
    TargetError,
)
from geopool.fixture_models import DEFAULT_MODEL, resolve_model_dir
from geopool.gate.options import GATE_OPTIONS
from geopool.load.run import options as load_options
from geopool.load.study.sweep import OPTIONS as _SWEEP_OPTIONS
from geopool.server import DEFAULT_PLUGIN, EmbeddedServer


def _friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (ContractError, ConfigError, RegistryError, FaultSpecError, CheckpointError, InvalidArgument,
                InstallError, MissingDependencyError, click.BadParameter) as exc:
            click.echo(f"{ERROR_PREFIX}{exc}", err=True)
            sys.exit(exitcodes.USAGE)
        except (ServerError, TargetError, EmbeddedServerError) as exc:
            click.echo(f"{ERROR_PREFIX}{exc}", err=True)
            sys.exit(exitcodes.TARGET_UNUSABLE)
        except GeopoolError as exc:
            click.echo(f"{ERROR_PREFIX}{exc}", err=True)
            sys.exit(exitcodes.FAILED)

    return wrapper


def _sigterm_as_interrupt() -> None:
    """SIGTERM (a cancelled CI job, a timeout) stops a run like Ctrl-C: its children and their servers are
    stopped and what was measured is written, instead of leaving them running detached."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


class _Commands(click.Group):
    """click's group, exiting by geopool's table: a usage error is 4 (click's own is 2, which pytest uses
    for "interrupted"), Ctrl-C is 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("standalone_mode", None)
        try:
            returned = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as exc:
            exc.show()
            sys.exit(exitcodes.USAGE)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exitcodes.USAGE if exc.exit_code == 2 else exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("Aborted!", err=True)
            sys.exit(exitcodes.INTERRUPTED)
        except Exception:  # a bug: say so with its traceback, and never exit 1, which means "a requirement failed"
            traceback.print_exc()
            click.echo("error: geopool itself failed (the traceback above is a bug: please report it)", err=True)
            sys.exit(exitcodes.INTERNAL)
        sys.exit(returned if isinstance(returned, int) else exitcodes.OK)


#: ``geopool serve``/``demo``: the embedded server's options.
_SERVER_OPTIONS = (shared.EMBEDDED_MODEL, shared.EMBEDDED_DTYPE, shared.PORT, *shared.EMBEDDED[2:])
#: ``geopool serve`` also serves image-to-image.
_SERVE_OPTIONS = (*_SERVER_OPTIONS, *shared.IO_MODE)


def _server_options(func: Callable[..., Any]) -> Callable[..., Any]:
    return shared.click_options(_SERVER_OPTIONS)(func)


def _parse_input_shape(values: tuple[str, ...]) -> dict[str, tuple]:
    shapes = {}
    for value in values:
        name, sep, dims = value.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 1:
            raise click.BadParameter(f"{value!r} is not NAME=D1,D2,... (e.g. pixel_values=6,512,512)")
        shapes[name] = shape
    return shapes


#: A contract from a config, with overrides (``geopool contract``, ``request``, ``proxy``).
_CONTRACT_OPTIONS = (shared.MODEL_CONFIG, shared.INPUT_DTYPE, shared.INPUT_SHAPE, shared.NUM_CLASSES)


def _contract_options(func: Callable[..., Any]) -> Callable[..., Any]:
    return shared.click_options(_CONTRACT_OPTIONS)(func)


def _contract_from(model_config: Path | None, input_dtype: str | None, input_shape: tuple[str, ...],
                   num_classes: int | None) -> ModelContract:
    input_shapes = _parse_input_shape(input_shape)
    found = load_contract(model_config, input_dtype=input_dtype or "float32")
    unknown = set(input_shapes) - {spec.name for spec in found.inputs}
    if unknown:
        raise ContractError(f"--input-shape names unknown inputs {sorted(unknown)}; "
                            f"the contract's inputs are {[spec.name for spec in found.inputs]}")
    inputs = tuple(InputSpec(spec.name, input_shapes.get(spec.name, spec.shape)) for spec in found.inputs)
    return found.with_overrides(inputs=inputs, num_classes=num_classes)


def _make_server(**values: Any) -> EmbeddedServer:
    io = {"mode": values["mode"], "plugin": values["plugin"] or DEFAULT_PLUGIN} if "mode" in values else {}
    return EmbeddedServer(values["embedded_model"], port=values["port"], dtype=values["embedded_dtype"],
                          max_num_seqs=values["max_num_seqs"], extra_args=values["vllm_arg"],
                          startup_timeout_s=values["startup_timeout"], device=values["embedded_device"], **io)


@click.group(cls=_Commands)
@click.version_option(package_name="geopool")
def main() -> None:
    """Conformance and load testing for vLLM servers serving TerraTorch models via /pooling."""


@main.command()
@shared.click_options(_SERVE_OPTIONS)
@_friendly_errors
def serve(**options: Any) -> None:
    """Run the embedded vLLM server on 127.0.0.1 until Ctrl-C."""
    server = _make_server(**options)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SIGTERM → normal exit → cleanup below
    # Python leaves SIGINT ignored when it starts with it ignored (a background job of a shell script,
    # nohup): Ctrl-C / SIGINT must still stop the server.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    click.echo(f"starting vLLM ({server.model_name}, dtype {server.dtype}, device {server.device}); log: reports/",
               err=True)
    with server:
        click.echo(f"ready in {server.startup_s:.1f} s: {server.url}  (model {server.model_name!r}, "
                   f"inputs in {server.dtype}; log {server.log_path})")
        if server.plugin_description:
            click.echo(f"image-to-image through {server.plugin_description}; out_data_format=path answers go to "
                       f"{server.io_output_dir}")
        try:
            while server.alive():
                time.sleep(1.0)
        except KeyboardInterrupt:
            click.echo("stopping", err=True)
            return
    click.echo("error: the vLLM server exited on its own; see its log", err=True)
    sys.exit(exitcodes.TARGET_UNUSABLE)


def _send_seed(url: str, model: str, contract: ModelContract, api_key: str | None) -> np.ndarray:
    body = wire.seed_request(model, contract)
    with PoolingClient(url, api_key=api_key) as client:
        response = client.pool(body)
    result = wire.decode_json_response(response.json(), contract.output_shape)
    click.echo(f"POST {url}/pooling → {response.status} in {response.elapsed_s:.3f} s")
    click.echo(f"decoded output: shape {result.shape}, dtype {result.dtype}, finite {bool(np.isfinite(result).all())}, "
               f"min {result.min():.6g}, mean {result.mean():.6g}, max {result.max():.6g}")
    click.echo(f"Returned result: {result}")
    return result


@main.command()
@_server_options
@_friendly_errors
def demo(**options: Any) -> None:
    """Start the embedded server, send the seed request, print what came back."""
    server = _make_server(**options)
    click.echo(f"starting the embedded vLLM server ({server.model_name}, dtype {server.dtype}) …", err=True)
    with server:
        click.echo(f"server healthy in {server.startup_s:.1f} s at {server.url}")
        _send_seed(server.url, server.model_name, server.contract, None)


@main.command()
@shared.click_options((shared.BASE_URL.but(required=True), shared.MODEL, *_CONTRACT_OPTIONS, shared.API_KEY))
@_friendly_errors
def request(base_url: str, model: str | None, api_key: str | None, **contract_options: Any) -> None:
    """Send the seed request to a running server and print the decoded answer."""
    if contract_options["input_dtype"] is None:
        raise ConfigError(shared.missing_input_dtype(base_url))
    contract = _contract_from(**contract_options)
    if model is None:
        with PoolingClient(base_url, api_key=api_key) as client:
            models = client.models()
        if len(models) != 1:
            raise click.BadParameter(f"the server lists {len(models)} models {models!r}; pass --model")
        model = models[0]
    _send_seed(base_url, model, contract, api_key)


@main.command()
@_contract_options
@_friendly_errors
def contract(**contract_options: Any) -> None:
    """Print the model contract read from a config (default: Sen1Floods11), with overrides."""
    found = _contract_from(**contract_options)
    for spec in found.inputs:
        marker = " (target)" if spec.name == found.target else ""
        click.echo(f"input  {spec.name}: {'×'.join(map(str, spec.shape))} {found.input_dtype}{marker}")
    click.echo(f"output {'×'.join(map(str, found.output_shape))} ({found.num_classes} classes)")


@main.command()
@shared.click_options((shared.MODEL_CONFIG.but(default=Path(DEFAULT_MODEL)), shared.TERRATORCH_VERSION, shared.MODE,
                       shared.NO_BUILD))
@_friendly_errors
def compat(model_config: Path, terratorch_version: str | None, mode: str, no_build: bool) -> None:
    """Will this model config build and serve on a TerraTorch version? Known changes, and a real build."""
    from geopool import compat as checks
    from geopool.server import terratorch_version as installed_version

    config = checks.load_config(model_config)
    installed = installed_version()
    version = terratorch_version or installed
    if version is None:
        raise InvalidArgument("TerraTorch is not installed here: pass --terratorch-version X.Y.Z")
    found = checks.config_problems(config, version, mode)
    for problem in found:
        click.echo(f"{problem.severity}: {problem.rule}: {problem.where}\n    {problem.why}")
    built = "not built (--no-build)" if no_build else f"not built (TerraTorch {installed or 'none'} installed here)"
    failed = any(problem.severity == "incompatible" for problem in found)
    if not no_build and installed is not None and version == installed:
        path = Path(model_config) if Path(model_config).is_file() else resolve_model_dir(model_config) / "config.json"
        error = checks.build_problem(path)
        built = f"built with TerraTorch {installed}: " + ("ok" if error is None else f"FAILED\n    {error}")
        failed = failed or error is not None
    click.echo(f"{built}")
    click.echo(f"compat: {'INCOMPATIBLE' if failed else 'compatible'} with TerraTorch {version} ({mode})")
    sys.exit(exitcodes.FAILED if failed else exitcodes.OK)


@main.command()
@shared.click_options((shared.UPSTREAM, shared.FAULT, shared.LISTEN, shared.HOST, shared.MAX_SECONDS,
                       load_options.option("max_requests").but(default=100_000), shared.LIST_FAULTS,
                       *_CONTRACT_OPTIONS))
@_friendly_errors
def proxy(upstream: str, fault: str, listen: int, host: str, max_seconds: float, max_requests: int,
          list_faults: bool, **contract_options: Any) -> None:
    """A reverse proxy in front of a real server that plants one fault, or several stacked (A+B: A in
    front of B). Faults that judge requests (repair-validate, die-on-killer) need the served model's
    --model-config and --input-dtype."""
    import asyncio

    from geopool.faults import describe_faults
    from geopool.proxy import FaultProxy

    if list_faults:
        for name, summary in describe_faults():
            click.echo(f"{name:16s} {summary}")
        return
    if not upstream.startswith(("http://", "https://")):
        raise click.BadParameter(f"--upstream {upstream!r} must be an http:// or https:// URL")
    given = contract_options["model_config"] is not None or contract_options["input_dtype"] is not None
    server = FaultProxy(upstream, fault, host=host, port=listen, max_seconds=max_seconds, max_requests=max_requests,
                        contract=_contract_from(**contract_options) if given else None)

    async def run() -> None:
        await server.start()
        click.echo(f"proxy {server.url} → {upstream} with fault {fault!r} "
                   f"(stops after {max_seconds:.0f} s or {max_requests} requests)")
        await server.serve_until_done()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    except OSError as exc:
        raise click.BadParameter(f"cannot listen on {host}:{listen}: {exc}") from exc



@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def conformance(pytest_args: tuple[str, ...]) -> None:
    """Run the conformance suite: pytest on the installed suite, every argument passed to pytest.

    \b
    geopool conformance --base-url URL [--model M] [--input-dtype D] [--api-key K] [-k EXPR] ...
    geopool conformance            (no --base-url: the suite starts the embedded server)

    The suite's options follow, in pytest's help, under 'geopool conformance suite'.
    Same as 'pytest --pyargs geopool_conformance ARGS', from the current folder (reports
    under ./reports). Exit code: geopool's table (0 passed, 1 failed, 4 bad usage, 12 target
    unusable, 13 with --strict: a MUST requirement unchecked); see 'geopool gate --help'.
    """
    from geopool.conformance import command

    argv = command.pytest_argv(pytest_args)
    if "--help" in pytest_args or "-h" in pytest_args:
        click.echo(click.get_current_context().get_help())
        click.echo("\npytest's help, with the suite's options (group 'geopool conformance suite'):\n")
    sys.exit(command.run_pytest(argv))


@main.command()
@load_options.click_options
@shared.click_options(shared.EMBEDDED)
@_friendly_errors
def load(embedded_model: str, embedded_dtype: str, embedded_device: str, max_num_seqs: int,
         vllm_arg: tuple[str, ...], startup_timeout: float, **values: Any) -> None:
    """Run a load scenario (headless Locust) and gate on an SLO file.

    Exit codes (geopool's table): 0 pass, 4 bad usage or config, 10 SLO breached, 11 invalid run,
    12 no target / run failed.
    """
    from geopool.load.run.command import run_load

    _sigterm_as_interrupt()
    code = run_load(values, embedded={"model": embedded_model, "dtype": embedded_dtype, "device": embedded_device,
                                      "max_num_seqs": max_num_seqs, "vllm_args": vllm_arg,
                                      "startup_timeout": startup_timeout})
    sys.exit(code)


@main.command()
@shared.click_options(_SWEEP_OPTIONS)
@shared.click_options(shared.EMBEDDED)
@_friendly_errors
def sweep(embedded_model: str, embedded_dtype: str, embedded_device: str, max_num_seqs: int,
          vllm_arg: tuple[str, ...], startup_timeout: float, **values: Any) -> None:
    """Find the highest open-loop arrival rate at which an SLO holds (one load run per rising step).

    Exit codes (geopool's table): 0 a rate found, 4 bad usage, 10 no step met the SLO (one breached),
    11 no step was valid, 12 target unusable.
    """
    from geopool.load.study.sweep import run_sweep

    _sigterm_as_interrupt()
    sys.exit(run_sweep(values, embedded={"model": embedded_model, "dtype": embedded_dtype, "device": embedded_device,
                                         "max_num_seqs": max_num_seqs, "vllm_args": vllm_arg,
                                         "startup_timeout": startup_timeout}))


@main.command()
@click.argument("base", type=click.Path(path_type=Path))
@click.argument("new", type=click.Path(path_type=Path))
@shared.click_options((load_options.option("slo"), shared.THRESHOLD, shared.CONFIDENCE,
                       load_options.option("report_dir"), shared.ALLOW_INVALID))
@_friendly_errors
def compare(base: Path, new: Path, slo: Path | None, threshold: float, confidence: float,
            report_dir: Path | None, allow_invalid: bool) -> None:
    """Compare two load runs (run folders or gate folders): did NEW get slower than BASE?

    Per-percentile and throughput differences with block-bootstrap intervals from the per-request
    records. Exit codes: 0 no regression, 14 regressed, 11 a run is invalid, 4 bad usage.
    """
    from geopool.load.study.compare import run_compare

    sys.exit(run_compare(base, new, slo_file=slo, threshold=threshold / 100.0, confidence=confidence,
                         report=report_dir, allow_invalid=allow_invalid))


@main.command(context_settings={"ignore_unknown_options": False})
@shared.click_options(GATE_OPTIONS)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
@_friendly_errors
def gate(pytest_args: tuple[str, ...], **values: Any) -> None:
    """Gate a release: the conformance suite, then a load scenario against the same target, then the SLO.

    \b
    geopool gate --base-url URL --input-dtype float16 --slo slo.toml [--waivers w.toml] [-- PYTEST_ARGS]
    geopool gate                (no URL: the embedded server, for both phases)

    One report folder (report.html, summary.json, junit.xml, summary.md, conformance/, load/, repro/),
    the Markdown summary appended to $GITHUB_STEP_SUMMARY when set, and one exit code: 0 passed,
    1 a requirement failed, 4 bad usage, 10 SLO breached, 11 invalid load run, 12 target unusable,
    13 a MUST requirement unchecked and not waived (README, 'Exit codes').
    """
    from geopool.gate.command import run_gate

    _sigterm_as_interrupt()
    sys.exit(run_gate(values, pytest_args))


if __name__ == "__main__":
    main()
