"""Settings, queue naming, priorities and backoff: the pure rules, by property and by table."""

from __future__ import annotations

import string
from dataclasses import replace
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from scaler.cli import main
from worker.app import retry_delay_seconds
from worker.celeryconf import transport_options, worker_config
from worker.client import Client
from worker.queues import (
    MAX_PRIORITY,
    REDIS_PRIORITY_STEPS,
    TASK_NAME,
    check_priority,
    message_priority,
    redis_step,
)
from worker.settings import (
    BROKER_URL_ENV,
    ENV_VARS,
    RESULT_BACKEND_ENV,
    SettingsError,
    Transport,
    WorkerSettings,
    parse_queues,
    redact,
    settings_from_env,
    transport_of,
)

BASE = WorkerSettings(
    broker_url="redis://:hunter2@redis:6379/0",
    result_backend="redis://:hunter2@redis:6379/1",
    model="llama-8b",
    queues=("llama-8b",),
)

queue_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,30}", fullmatch=True)
seconds = st.floats(min_value=0.001, max_value=1e5, allow_nan=False)


# ---- settings: the defaults and why, every bad value named ------------------------------------


def test_defaults_derive_the_visibility_timeout_from_the_longest_generation() -> None:
    # 60 s of retry countdown + 5 s to connect + 600 s of generation + 120 s of margin.
    assert BASE.visibility_timeout_seconds == 785.0
    assert BASE.restore_interval_seconds == 10.0
    config = worker_config(BASE)
    assert config["task_acks_late"] is True
    assert config["task_reject_on_worker_lost"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert (config["worker_pool"], config["worker_concurrency"]) == ("threads", 256)
    assert config["broker_transport_options"] == {
        "visibility_timeout": 785.0,
        "unacked_restore_interval": 10.0,
        "unacked_restore_throttle": 1,
        "priority_steps": [0, 3, 6, 9],
    }
    [queue] = config["task_queues"]
    assert (queue.name, queue.routing_key) == ("llama-8b", "llama-8b")
    assert queue.queue_arguments == {"x-max-priority": 9}


def test_a_key_prefix_is_kombus_global_keyprefix() -> None:
    options = transport_options(replace(BASE, key_prefix="tenant-a:"))
    assert options["global_keyprefix"] == "tenant-a:"
    assert "global_keyprefix" not in transport_options(BASE)


def test_amqp_has_no_redis_transport_options() -> None:
    amqp = replace(BASE, broker_url="amqp://guest:guest@rabbit:5672//")
    assert amqp.transport is Transport.AMQP
    assert transport_options(amqp) == {}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"broker_url": ""}, BROKER_URL_ENV),
        ({"broker_url": "kafka://u:hunter2@k:9092"}, BROKER_URL_ENV),
        ({"broker_url": "localhost:6379"}, BROKER_URL_ENV),
        ({"result_backend": ""}, RESULT_BACKEND_ENV),
        ({"result_backend": "hunter2"}, RESULT_BACKEND_ENV),
        ({"model": " "}, "--model"),
        ({"queues": ()}, "--queues"),
        ({"queues": ("a b",)}, "--queues"),
        ({"concurrency": 0}, "--concurrency"),
        ({"concurrency": 5000}, "--concurrency"),
        ({"vllm_url": "127.0.0.1:8000"}, "--vllm-url"),
        ({"vllm_url": "ftp://x"}, "--vllm-url"),
        ({"max_generation_seconds": 0}, "--max-generation-seconds"),
        ({"max_generation_seconds": float("nan")}, "--max-generation-seconds"),
        ({"connect_timeout_seconds": -1}, "--connect-timeout-seconds"),
        ({"retry_base_seconds": 0}, "--retry-base-seconds"),
        ({"retry_max_seconds": 0.5}, "--retry-max-seconds"),
        ({"max_retries": -1}, "--max-retries"),
        ({"visibility_timeout_override": 600.0}, "--visibility-timeout"),
        ({"key_prefix": "a b:"}, "--key-prefix"),
        ({"key_prefix": "x" * 101}, "--key-prefix"),
        ({"broker_url": "amqp://rabbit//", "key_prefix": "t:"}, "--key-prefix"),
    ],
)
def test_a_bad_setting_names_its_field_and_no_password(change: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        replace(BASE, **change)
    assert str(caught.value).startswith(named)
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)


@given(
    max_generation=seconds,
    connect=seconds,
    base=seconds,
    extra=st.floats(min_value=0, max_value=1e5),
    override_extra=st.none() | st.floats(min_value=0.001, max_value=1e5),
)
def test_the_visibility_timeout_always_outlasts_the_longest_hold(
    max_generation: float, connect: float, base: float, extra: float, override_extra: float | None
) -> None:
    hold = base + extra + connect + max_generation
    settings = replace(
        BASE,
        max_generation_seconds=max_generation,
        connect_timeout_seconds=connect,
        retry_base_seconds=base,
        retry_max_seconds=base + extra,
        visibility_timeout_override=None if override_extra is None else hold + override_extra,
    )
    assert settings.visibility_timeout_seconds > settings.minimum_visibility_seconds
    assert settings.minimum_visibility_seconds >= max_generation
    # The sweep comes within a tenth of the timeout (or 1 s), never slower than every 10 s.
    assert 1.0 <= settings.restore_interval_seconds <= 10.0
    assert settings.restore_interval_seconds <= max(1.0, settings.visibility_timeout_seconds / 10)


# ---- environment --------------------------------------------------------------------------------


def test_settings_from_env_default_the_queue_to_the_model() -> None:
    env = {
        BROKER_URL_ENV: "amqp://guest:guest@rabbit//",
        RESULT_BACKEND_ENV: "redis://redis:6379/1",
        "DEPTHSCALE_MODEL": "llama-8b",
        "DEPTHSCALE_CONCURRENCY": "64",
        "DEPTHSCALE_MAX_GENERATION_SECONDS": "120",
    }
    settings = settings_from_env(env)
    assert settings.queues == ("llama-8b",)
    assert (settings.concurrency, settings.max_generation_seconds) == (64, 120.0)
    both = settings_from_env({**env, "DEPTHSCALE_QUEUES": "llama-8b, llama-8b-batch"})
    assert both.queues == ("llama-8b", "llama-8b-batch")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, BROKER_URL_ENV),
        ({BROKER_URL_ENV: "redis://r/0"}, RESULT_BACKEND_ENV),
        ({BROKER_URL_ENV: "redis://r/0", RESULT_BACKEND_ENV: "redis://r/1"}, "DEPTHSCALE_MODEL"),
        ({"DEPTHSCALE_CONCURRENCY": "lots"}, "DEPTHSCALE_CONCURRENCY"),
        ({"DEPTHSCALE_MAX_RETRIES": "1.5"}, "DEPTHSCALE_MAX_RETRIES"),
        ({"DEPTHSCALE_VISIBILITY_TIMEOUT": "soon"}, "DEPTHSCALE_VISIBILITY_TIMEOUT"),
        ({"DEPTHSCALE_QUEUES": "a,,b"}, "DEPTHSCALE_QUEUES"),
    ],
)
def test_env_errors_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=f"^{named}"):
        settings_from_env(env)


def test_every_setting_has_an_environment_variable() -> None:
    assert set(ENV_VARS) == set(WorkerSettings.__dataclass_fields__)


# ---- queue names, transports, redaction --------------------------------------------------------


@given(st.lists(queue_names, min_size=1, max_size=5, unique=True))
def test_queue_lists_parse_back_to_themselves(names: list[str]) -> None:
    assert parse_queues(",".join(names)) == tuple(names)
    assert parse_queues(" , ".join(names)) == tuple(names)


@given(queue_names, st.sampled_from(list(" \t;\"'\\#%*")))
def test_names_with_separators_or_blanks_are_refused(name: str, bad: str) -> None:
    with pytest.raises(SettingsError, match=r"^--queues"):
        parse_queues(f"{name}{bad}x")
    with pytest.raises(SettingsError, match=r"^--queues"):
        parse_queues(f"{name},,x")


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://r:6379/0", Transport.REDIS),
        ("rediss://:pw@r:6380/0", Transport.REDIS),
        ("amqp://guest:guest@rabbit:5672//", Transport.AMQP),
        ("pyamqp://rabbit//", Transport.AMQP),
        ("AMQPS://rabbit//", Transport.AMQP),
    ],
)
def test_transport_follows_the_url_scheme(url: str, transport: Transport) -> None:
    assert transport_of(url) is transport


@given(
    st.text(alphabet=string.ascii_letters + string.digits + "!$&'()*+;=-._~", min_size=6),
    st.sampled_from(["redis", "amqp", "rediss"]),
)
def test_redact_never_shows_the_password(password: str, scheme: str) -> None:
    shown = redact(f"{scheme}://user:{password}@host:1234/0")
    assert password not in shown
    assert shown == f"{scheme}://user:***@host:1234/0"


# ---- priorities ------------------------------------------------------------------------------


@given(st.integers(0, 9), st.integers(0, 9))
def test_a_more_urgent_request_is_never_served_after_a_less_urgent_one(p: int, q: int) -> None:
    if p < q:
        # RabbitMQ serves the higher message priority first; Redis the lower step.
        assert message_priority(q, Transport.AMQP) > message_priority(p, Transport.AMQP)
        assert redis_step(q) <= redis_step(p)


def test_redis_bands_with_the_default_steps() -> None:
    assert [redis_step(p) for p in range(10)] == [9, 6, 6, 6, 3, 3, 3, 0, 0, 0]
    assert set(map(redis_step, range(10))) == set(REDIS_PRIORITY_STEPS)
    assert message_priority(MAX_PRIORITY, Transport.REDIS) == 0


@pytest.mark.parametrize("bad", [-1, 10, 2.5, "9", True, None])
def test_priority_out_of_range_is_refused(bad: Any) -> None:
    with pytest.raises(SettingsError, match=r"^priority"):
        check_priority(bad)


# ---- backoff ------------------------------------------------------------------------------------


@given(
    st.integers(0, 2000),
    st.floats(0.01, 10),
    st.floats(0, 1000),
    st.floats(0, 1, exclude_max=True),
)
def test_retry_delays_double_within_the_cap(
    retries: int, base: float, extra: float, unit: float
) -> None:
    cap = base + extra
    delay = retry_delay_seconds(retries, base, cap, unit)
    ceiling = min(cap, base * 2.0 ** min(retries, 64))
    assert ceiling / 2 <= delay <= ceiling <= cap
    assert retry_delay_seconds(retries + 1, base, cap, unit) >= delay


# ---- the command line: one line, exit 1, the field named ---------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--model", "m"], {}, BROKER_URL_ENV),
        (["--model", "m"], {BROKER_URL_ENV: "redis://r/0"}, RESULT_BACKEND_ENV),
        (["--model", "m", "--concurrency", "0"], {}, "--concurrency"),
        (["--model", "m", "--queues", "a,a"], {}, "--queues"),
        (["--model", "m", "--vllm-url", "vllm:8000"], {}, "--vllm-url"),
        (["--model", "m", "--max-generation-seconds", "0"], {}, "--max-generation-seconds"),
    ],
)
def test_worker_command_refuses_bad_settings_in_one_line(
    args: list[str], env: dict[str, str], named: str
) -> None:
    full_env = {
        BROKER_URL_ENV: "redis://:hunter2@r/0",
        RESULT_BACKEND_ENV: "redis://:hunter2@r/1",
        **env,
    }
    if named == BROKER_URL_ENV:
        full_env[BROKER_URL_ENV] = ""
    if named == RESULT_BACKEND_ENV:
        full_env[RESULT_BACKEND_ENV] = ""
    result = CliRunner().invoke(main, ["worker", *args], env=full_env)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"Error: {named}")
    assert "hunter2" not in result.output


# ---- `celery -A worker.app worker`: the app from the environment alone --------------------------


def test_the_module_level_app_is_built_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import worker.app as module

    monkeypatch.setattr(module, "_app", None)
    monkeypatch.setenv(BROKER_URL_ENV, "amqp://guest:guest@rabbit:5672//")
    monkeypatch.setenv(RESULT_BACKEND_ENV, "redis://redis:6379/1")
    monkeypatch.setenv("DEPTHSCALE_MODEL", "llama-8b")
    monkeypatch.setenv("DEPTHSCALE_QUEUES", "llama-8b,llama-8b-batch")
    monkeypatch.setenv("DEPTHSCALE_CONCURRENCY", "16")
    app = module.app
    assert module.celery is app  # Celery's -A looks for `app`, then `celery`
    assert TASK_NAME in app.tasks
    assert app.conf.worker_concurrency == 16
    assert app.conf.worker_pool == "threads"
    assert [q.name for q in app.conf.task_queues] == ["llama-8b", "llama-8b-batch"]
    with pytest.raises(AttributeError):
        _ = module.something_else


def test_the_client_refuses_a_body_for_another_model() -> None:
    client = Client("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/1")  # never connects
    with pytest.raises(SettingsError, match=r"^body\.model"):
        client.submit("llama-8b", {"model": "llama-70b", "prompt": "x"}, endpoint="completions")
    with pytest.raises(SettingsError, match=r"^priority"):
        client.submit("llama-8b", {"prompt": "x"}, endpoint="completions", priority=10)
    with pytest.raises(SettingsError, match=r"^endpoint"):
        client.submit("llama-8b", {"prompt": "x"}, endpoint="embeddings")
    with pytest.raises(SettingsError, match=r"^queue"):
        client.submit("llama-8b", {"prompt": "x"}, queue="a,b")
