"""The ``depthscale`` command line: one group, subcommands loaded only when used.

Each subcommand lives with the package it drives (scaler, simulator); this module only knows
their names, so ``depthscale --help`` stays instant and imports neither gRPC nor matplotlib.
"""

from __future__ import annotations

import importlib

import click

# name -> (module:attribute, one-line help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("scaler.serve:serve", "Run the KEDA external scaler (gRPC) for Celery queues."),
    "demo": ("demo.command:demo", "The whole path on this machine, then the simulator beside it."),
    "replay": ("demo.command:replay_command", "Replay a trace live; compare to simulate."),
    "simulate": ("simulator.cli:simulate", "Replay a trace through modelled KEDA/HPA/GPUs."),
    "trace": ("simulator.cli:trace", "Trace tools: generate synthetic traces, inspect files."),
    "render": ("simulator.render:render", "Render per-model Kubernetes manifests."),
    "tune": ("simulator.cli:tune", "Search the policy's knobs on a trace: cost versus SLO."),
    "worker": ("worker.cli:worker", "Run the Celery worker beside a vLLM replica."),
}

# The extra (pyproject.toml) that installs each command's packages.
_EXTRAS: dict[str, str] = {
    "serve": "serve",
    "demo": "demo",
    "replay": "demo",
    "simulate": "sim",
    "trace": "sim",
    "render": "sim",
    "tune": "sim",
    "worker": "worker",
}
_OWN_PACKAGES = frozenset({"scaler", "policies", "simulator", "proto", "worker", "demo"})


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.partition(".")[0] in _OWN_PACKAGES:
                raise
            extra = _EXTRAS.get(cmd_name, "all")
            raise click.ClickException(
                f"depthscale {cmd_name} needs the {extra!r} extra (missing module {exc.name!r}): "
                f"pip install 'depthscale[{extra}]'"
            ) from None
        command = getattr(module, attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{entry[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="depthscale")
def main() -> None:
    """depthscale: queue-depth autoscaling for LLM inference on Kubernetes GPUs.

    \b
    serve     the KEDA external scaler, reading Celery queue depth from Redis
    demo      see it work on this machine, no cluster needed
    replay    a trace through the live system, compressed, beside the simulator
    simulate  replay traffic and compare policies' GPU cost and queue wait
    render    write the per-model Kubernetes objects from a models file
    tune      search the policy's settings on your traffic, cheapest meeting the SLO
    """
