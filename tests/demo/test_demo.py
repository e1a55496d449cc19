"""``depthscale demo`` and ``replay`` on the command line: help that explains, bad options
refused naming the option (nothing is started for them)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from scaler.cli import main


@pytest.mark.parametrize("command", ["demo", "replay"])
def test_help_explains_the_run(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    for phrase in ("--time-scale", "--broker", "--rabbitmq-url", "simulat", "decision"):
        assert phrase in result.output


def test_both_commands_are_listed() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "demo" in result.output
    assert "replay" in result.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        pytest.param(["--time-scale", "0.5"], "--time-scale", id="slower-than-real"),
        pytest.param(["--max-replicas", "0"], "--max-replicas", id="no-replicas"),
        pytest.param(["--slots", "0"], "--slots", id="no-slots"),
        pytest.param(["--broker", "kafka"], "--broker", id="unknown-broker"),
        pytest.param(["--trace", "/nonexistent/trace.csv"], "--trace", id="missing-trace"),
    ],
)
def test_bad_options_are_refused_naming_the_option(args: list[str], option: str) -> None:
    result = CliRunner().invoke(main, ["demo", *args])
    assert result.exit_code == 2
    assert option in result.output
