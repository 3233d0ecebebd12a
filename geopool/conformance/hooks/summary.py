"""The end of a conformance run: conformance.json, its HTML page, the reproducers, and the terminal summary."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from geopool.conformance.hooks.ledger import strict_failures, strict_mode
from geopool.conformance.hooks.session import say_expectations
from geopool.conformance.hooks.stash import EXPECT_KEY, GUARD_KEY, LEDGER_KEY, STARTED_KEY, TARGET_KEY
from geopool.conformance.html import write_conformance_html
from geopool.conformance.registry import Expectations
from geopool.conformance.report import terminal_table, write_report
from geopool.conformance.target import Target

__all__ = ["pytest_terminal_summary"]


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    ledger = config.stash.get(LEDGER_KEY, None)
    target = config.stash.get(TARGET_KEY, None)
    if ledger is None or target is None:
        return
    expectations = config.stash.get(EXPECT_KEY, Expectations(None, {}))
    path = Path(config.getoption("conformance_report"))
    duration = time.time() - config.stash.get(STARTED_KEY, time.time())
    report = write_report(path, ledger, target, expectations, duration, _replay_command(config, target),
                          strict_failures=strict_failures(config, ledger),
                          repro_dir=Path(config.getoption("repro_dir")))
    html_path = write_conformance_html(Path(config.getoption("conformance_html") or path.with_suffix(".html")),
                                       report)
    terminalreporter.write_sep("=", "geopool conformance")
    for number, line in enumerate(terminal_table(ledger, target)):
        terminalreporter.write_line(line, **({"yellow": True, "bold": True}
                                             if number == 0 and ledger.unchecked_must() else {}))
    say_expectations(config, expectations)
    destructive = [r for reports in terminalreporter.stats.values() for r in reports
                   if isinstance(r, pytest.TestReport) and "destructive" in r.keywords]
    if destructive:
        guard = config.stash.get(GUARD_KEY, None)
        restarts = f", server restarted {guard.restarts}× ({guard.restart_seconds:.0f} s)" if guard else ""
        ran = sum(1 for r in destructive if r.when == "call" and (not r.skipped or hasattr(r, "wasxfail")))
        terminalreporter.write_line(f"destructive inputs: {ran} tests run, "
                                    f"wall time {sum(r.duration for r in destructive):.1f} s{restarts}")
    terminalreporter.write_line(f"wall time {duration:.1f} s (after target start-up)  report: {path}  "
                                f"html: {html_path}  junit: {config.option.xmlpath or '-'}")
    scripts = [entry["reproducer"] for entry in report["requirements"] if "reproducer" in entry]
    if scripts:
        terminalreporter.write_line(f"reproducers (httpx + numpy; exit 1 = reproduced): {len(scripts)} in "
                                    f"{config.getoption('repro_dir')}/, e.g. python {scripts[0]}")
    flag = "--strict" if strict_mode(config) else "--strict-expectations"
    for reason in strict_failures(config, ledger):
        terminalreporter.write_line(f"the run fails ({flag}): {reason}", red=True, bold=True)


def _replay_command(config: pytest.Config, target: Target) -> str:
    """A command template; ``{test}`` is replaced by a failing test's node id."""
    url = "" if target.embedded else f" --base-url {target.url}"
    return (f"pytest '{{test}}'{url} --model {target.model}  (a failing Hypothesis example is printed as a "
            "recipe, and with the dev profile saved under .hypothesis/examples and re-tried first)")
