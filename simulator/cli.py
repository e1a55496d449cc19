"""``depthscale trace`` (synthetic traces, inspection) and ``depthscale simulate``."""

from __future__ import annotations

import click


@click.group()
def trace() -> None:
    """Trace tools: generate synthetic traces, inspect trace files."""


@click.command()
def simulate() -> None:
    """Replay a trace through modelled KEDA/HPA/GPU node pools and compare policies."""
    raise click.ClickException("not available yet")
