"""``geopool load``: the Locust scenarios as one bounded command for CI, against a URL or the embedded server.

It checks the scenario and SLO files first (a bad one is a usage error before anything starts),
starts the embedded vLLM server when no URL is given, runs headless Locust on
:mod:`geopool.load.run.locustfile` as a child process with a hard deadline, and returns Locust's exit
code, which geopool's locustfile sets from the run's verdict (:data:`geopool.load.judge.slo.EXIT_CODES`).
A code Locust sets on its own (a crash, its command line refused) is mapped into geopool's table by
:func:`geopool_code`, never passed through with another meaning.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from geopool.deadlines import locust_run_s
from geopool.errors import ERROR_PREFIX, ConfigError
from geopool.events import EventChannel
from geopool.exitcodes import INTERNAL, INTERRUPTED, USAGE
from geopool.load.judge.slo import EXIT_CODES, EXIT_NO_TARGET, load_slo
from geopool.load.run.options import (
    default_report_dir,
    locust_arguments,
    mode_of,
    require_input_dtype,
    resolve,
)
from geopool.load.run.tally import load_line
from geopool.modes import IMAGE_TO_IMAGE
from geopool.numerics import bounds_for
from geopool.options import DEVICE
from geopool.progress import ProgressLine, watch_child
from geopool.server import DEFAULT_PLUGIN

__all__ = ["check_load_values", "child_values", "geopool_code", "locust_command", "run_child", "run_load", "target"]

LOCUSTFILE = Path(__file__).with_name("locustfile.py")  # not imported here: Locust monkey-patches
#: Image-to-image against the embedded server: the GeoTIFFs it reads, in the run's report folder.
IO_INPUTS = "io-inputs"


def locust_command(values: Mapping[str, Any], report_dir: Path) -> list[str]:
    """The headless Locust command line that runs ``values`` (the option table's) into ``report_dir``."""
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--csv", str(report_dir / "locust"), "--html", str(report_dir / "locust.html"), "--only-summary",
            *locust_arguments({**values, "report_dir": report_dir})]


def check_load_values(values: Mapping[str, Any], *, embedded: bool) -> Any:
    """A load run's usage checks, before anything starts: the scenario (returned), the SLO file, and
    the server's dtype against a URL. Each raises ConfigError naming the problem."""
    scenario = resolve(values, embedded=embedded)
    if not embedded and values.get("plugin") is not None:
        raise ConfigError("--plugin picks the embedded server's IO-processor plugin; a server at --base-url runs "
                          "its own (drop --plugin, or drop --base-url to start the embedded server)")
    if values.get("slo") is not None:
        load_slo(values["slo"])
    require_input_dtype(values, embedded=embedded)
    return scenario


def run_load(values: Mapping[str, Any], *, embedded: dict[str, Any]) -> int:
    """Run one scenario to its end and return the exit code (see EXIT_CODES).

    ``values``: the option table's (:data:`geopool.load.run.options.OPTIONS`), keyed by ``dest``;
    ``embedded``: how to start the embedded server when ``base_url`` is None.
    """
    base_url = values["base_url"]
    scenario = check_load_values(values, embedded=base_url is None)
    report_dir = Path(values["report_dir"] or default_report_dir(scenario.name))
    report_dir.mkdir(parents=True, exist_ok=True)
    if mode_of(values) == IMAGE_TO_IMAGE and base_url is None:
        embedded = {**embedded, "mode": IMAGE_TO_IMAGE, "plugin": values.get("plugin") or DEFAULT_PLUGIN}
        # the embedded server runs on this machine: it reads the run's own folder by the same paths
        values = {**values, "io_input_dir": values.get("io_input_dir") or (report_dir / IO_INPUTS).resolve(),
                  "plugin": embedded["plugin"]}
    with target(base_url, embedded) as (url, server):
        child = child_values(values, scenario, url, server)
        print(f"geopool load: {scenario.name} against {url}; report in {report_dir}", flush=True)
        return run_child(child, scenario, report_dir)


def child_values(values: Mapping[str, Any], scenario: Any, url: str, server: Any) -> dict[str, Any]:
    """The Locust child's option values against ``url``; ``server``: the embedded one (or None), which
    supplies the model config, dtype, reference checkpoint and numeric bounds."""
    child = {**values, "base_url": url}
    if server is not None:
        child.update(model_config=values["model_config"] or server.served_dir / "config.json",
                     input_dtype=server.dtype,
                     reference_checkpoint=values["reference_checkpoint"] or server.served_dir,
                     numeric_bounds=bounds_for(values.get("numeric_bounds"), embedded=True))
    if scenario.verify != "reference":
        child["reference_checkpoint"] = None
    return child


def run_child(child: Mapping[str, Any], scenario: Any, report_dir: Path) -> int:
    """One headless Locust run of ``scenario`` with ``child`` values into ``report_dir``, bounded in time."""
    env = dict(os.environ)
    if child.get("api_key"):  # through the environment, not argv, so it never shows in `ps`
        env["GEOPOOL_API_KEY"] = child["api_key"]
    deadline = locust_run_s(scenario)
    return _run_child(locust_command(child, report_dir), env, deadline, report_dir, scenario)


def _run_child(command: list[str], env: dict[str, str], deadline: float, report_dir: Path, scenario: Any) -> int:
    progress = ProgressLine()
    records = report_dir / "records.jsonl"
    channel = EventChannel(forward=True)  # a gate that started this command shows the same figures
    try:
        code = watch_child(command, env=env, deadline_s=deadline, events=channel,
                           tick=lambda: progress.show("load", load_line(channel.latest("load"))))
    except KeyboardInterrupt:
        return INTERRUPTED
    finally:
        progress.close()
    if code is None:
        print(f"{ERROR_PREFIX}the load run did not stop within {deadline:.0f} s and was stopped; "
              f"records so far are in {records}", file=sys.stderr)
        return EXIT_NO_TARGET
    mapped = geopool_code(code, verdict_written=(report_dir / "summary.json").is_file())
    if mapped != code:
        print(f"{ERROR_PREFIX}Locust exited {code} without a verdict of geopool's ({describe_locust(code)}); "
              f"records so far are in {records}", file=sys.stderr)
    return mapped


def geopool_code(code: int, *, verdict_written: bool) -> int:
    """geopool's exit code for the Locust child's ``code``: the locustfile's own codes (:data:`EXIT_CODES`)
    stand; any other code is Locust's own: exit 2 without a written verdict is Locust refusing its command
    line (argparse), anything else a crash (1: an exception, which Locust's table calls failures)."""
    if code in EXIT_CODES and (code != INTERRUPTED or verdict_written):
        return code
    return USAGE if code == INTERRUPTED else INTERNAL


def describe_locust(code: int) -> str:
    return "its command line was refused" if code == INTERRUPTED else "it crashed or stopped on its own"


@contextlib.contextmanager
def target(base_url: str | None, embedded: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if base_url:
        yield base_url.rstrip("/"), None
        return
    from geopool.server import EmbeddedServer

    io = {"mode": embedded["mode"], "plugin": embedded["plugin"]} if embedded.get("mode") else {}
    server = EmbeddedServer(embedded["model"], dtype=embedded["dtype"], max_num_seqs=embedded["max_num_seqs"],
                            extra_args=embedded["vllm_args"], startup_timeout_s=embedded["startup_timeout"],
                            device=embedded.get("device", DEVICE.default), **io)
    through = f", image-to-image through {server.plugin_description}" if server.plugin_description else ""
    print(f"geopool: no --base-url; starting the embedded server ({server.model_name}{through})", flush=True)
    with server:
        yield server.url, server
