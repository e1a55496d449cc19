"""``depthscale worker``: the Celery worker beside one vLLM replica (its container's command).

The broker and result backend come from the environment only (``DEPTHSCALE_BROKER_URL``,
``DEPTHSCALE_RESULT_BACKEND``), so their passwords never show in a process listing; every flag
also reads an environment variable (``worker/settings.py``: ``ENV_VARS``). A bad setting is one
line on stderr naming it, exit status 1.
"""

from __future__ import annotations

import json
import os
import sys

import click

from worker.settings import (
    BROKER_URL_ENV,
    ENV_VARS,
    RESULT_BACKEND_ENV,
    SettingsError,
    WorkerSettings,
    parse_queues,
)

_DEFAULTS = WorkerSettings.__dataclass_fields__


def _default(field: str) -> object:
    return _DEFAULTS[field].default


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model",
    envvar=ENV_VARS["model"],
    required=True,
    help="Model name the replica serves (vLLM --served-model-name).",
)
@click.option(
    "--queues",
    envvar=ENV_VARS["queues"],
    default=None,
    help="Celery queues to consume, comma-separated (default: the model's name).",
)
@click.option(
    "--concurrency",
    envvar=ENV_VARS["concurrency"],
    type=int,
    default=_default("concurrency"),
    show_default=True,
    help="Tasks held at once (threads): the trigger's replicaConcurrency, "
    "normally vLLM's --max-num-seqs.",
)
@click.option(
    "--vllm-url",
    envvar=ENV_VARS["vllm_url"],
    default=_default("vllm_url"),
    show_default=True,
    help="The replica's OpenAI-compatible server.",
)
@click.option(
    "--max-generation-seconds",
    envvar=ENV_VARS["max_generation_seconds"],
    type=float,
    default=_default("max_generation_seconds"),
    show_default=True,
    help="Longest one request may take on the replica (HTTP read timeout).",
)
@click.option(
    "--connect-timeout-seconds",
    envvar=ENV_VARS["connect_timeout_seconds"],
    type=float,
    default=_default("connect_timeout_seconds"),
    show_default=True,
    help="TCP connect timeout to the replica.",
)
@click.option(
    "--retry-base-seconds",
    envvar=ENV_VARS["retry_base_seconds"],
    type=float,
    default=_default("retry_base_seconds"),
    show_default=True,
    help="First retry delay; doubles per retry.",
)
@click.option(
    "--retry-max-seconds",
    envvar=ENV_VARS["retry_max_seconds"],
    type=float,
    default=_default("retry_max_seconds"),
    show_default=True,
    help="Ceiling of one retry delay.",
)
@click.option(
    "--max-retries",
    envvar=ENV_VARS["max_retries"],
    type=int,
    default=_default("max_retries"),
    show_default=True,
    help="Retries (refused, 429, 5xx) before the task fails.",
)
@click.option(
    "--visibility-timeout",
    envvar=ENV_VARS["visibility_timeout_override"],
    type=float,
    default=None,
    help="Redis only: seconds before an unacked task is redelivered "
    "(default: derived from the longest generation).",
)
@click.option(
    "--key-prefix",
    envvar=ENV_VARS["key_prefix"],
    default="",
    help="Redis only: kombu's global_keyprefix (the trigger's keyPrefix).",
)
@click.option(
    "--hostname",
    default="depthscale@%h",
    show_default=True,
    help="Celery node name (%h: the host name).",
)
@click.option(
    "--loglevel",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def worker(
    model: str,
    queues: str | None,
    concurrency: int,
    vllm_url: str,
    max_generation_seconds: float,
    connect_timeout_seconds: float,
    retry_base_seconds: float,
    retry_max_seconds: float,
    max_retries: int,
    visibility_timeout: float | None,
    key_prefix: str,
    hostname: str,
    loglevel: str,
) -> None:
    """Take a model's requests from its Celery queues and run them on the replica.

    \b
    Environment: DEPTHSCALE_BROKER_URL (redis:// or amqp://) and
    DEPTHSCALE_RESULT_BACKEND (e.g. redis://host:6379/1), both required.
    SIGTERM drains: no new tasks, the ones held finish, then exit.
    """
    try:
        settings = WorkerSettings(
            broker_url=os.environ.get(BROKER_URL_ENV, "").strip(),
            result_backend=os.environ.get(RESULT_BACKEND_ENV, "").strip(),
            model=model,
            queues=parse_queues(queues if queues is not None else model),
            concurrency=concurrency,
            vllm_url=vllm_url,
            max_generation_seconds=max_generation_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
            retry_base_seconds=retry_base_seconds,
            retry_max_seconds=retry_max_seconds,
            max_retries=max_retries,
            visibility_timeout_override=visibility_timeout,
            key_prefix=key_prefix,
        )
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None

    from worker.app import make_app  # Celery is imported only once the settings hold

    click.echo(f"depthscale worker: {json.dumps(settings.redacted())}", err=True)
    app = make_app(settings)
    # Mingle and gossip exchange state between workers at start and on every event: nothing
    # here uses it, and across hundreds of replicas it is broker traffic for nothing.
    app.worker_main(
        ["worker", f"--hostname={hostname}", f"--loglevel={loglevel.upper()}",
         "--without-mingle", "--without-gossip"]
    )  # fmt: skip
    sys.exit(0)
