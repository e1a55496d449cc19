"""scalerMetadata parsing: defaults, every key, and a table of malformed input naming the key."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.config import DEPTHSCALE, SEED, Mode
from scaler.metadata import KEDA_KEYS, KEYS, MetadataError, parse_metadata
from scaler.ports import DEFAULT_PRIORITY_STEPS, DEFAULT_SEP

BASE = {"broker": "main", "queues": "llama-8b"}


def test_minimal_metadata_gets_the_default_policy() -> None:
    parsed = parse_metadata(BASE)
    assert parsed.broker == "main"
    assert parsed.model is None
    assert parsed.config == DEPTHSCALE
    assert parsed.spec.queues == ("llama-8b",)
    assert parsed.spec.priority_steps == DEFAULT_PRIORITY_STEPS
    assert parsed.spec.key_prefix == ""
    assert parsed.spec.sep == DEFAULT_SEP
    assert parsed.spec.include_unacked is False


def test_the_seed_preset_is_the_seed_rule_and_keys_still_override_it() -> None:
    parsed = parse_metadata({**BASE, "preset": "seed", "scaleUpPending": "20"})
    assert parsed.config.scale_down_period_s is None
    assert parsed.config.scale_up_on_in_flight is False
    assert parsed.config.scale_up_pending == 20
    assert parsed.config.stabilization_window_s == SEED.stabilization_window_s


def test_every_key_lands_in_its_field() -> None:
    parsed = parse_metadata(
        {
            "broker": "gpu-broker",
            "queues": " llama-8b , llama-8b-batch ",
            "model": "llama-3.1-8b",
            "scaleUpPending": "40",
            "scaleDownPending": "2.5",
            "stabilizationWindowSeconds": "900",
            "warmupSeconds": "240",
            "lookaheadSeconds": "0",
            "growthWindowSeconds": "60",
            "minReplicas": "1",
            "maxReplicas": "12",
            "scaleDownStep": "2",
            "scaleDownPeriodSeconds": "90",
            "scaleUpOnInFlight": "false",
            "scaleUpFactor": "3",
            "replicaConcurrency": "64",
            "bufferReplicas": "1",
            "mode": "pending",
            "includeUnacked": "true",
            "priorityLevels": "9,0,5",
            "keyPrefix": "tenant-a:",
        }
    )
    c = parsed.config
    assert (c.scale_down_period_s, c.scale_up_on_in_flight, c.scale_up_factor) == (90.0, False, 3)
    assert parsed.broker == "gpu-broker"
    assert parsed.model == "llama-3.1-8b"
    assert parsed.spec.queues == ("llama-8b", "llama-8b-batch")
    assert (c.scale_up_pending, c.scale_down_pending) == (40.0, 2.5)
    assert (c.stabilization_window_s, c.warmup_s, c.lookahead_s, c.growth_window_s) == (
        900.0,
        240.0,
        0.0,
        60.0,
    )
    assert (c.min_replicas, c.max_replicas, c.scale_down_step) == (1, 12, 2)
    assert (c.replica_concurrency, c.buffer_replicas, c.mode) == (64, 1, Mode.PENDING)
    assert parsed.spec.include_unacked is True
    assert parsed.spec.priority_steps == (0, 5, 9)
    assert parsed.spec.key_prefix == "tenant-a:"


def test_keda_own_keys_are_accepted_and_ignored() -> None:
    keda = {"scalerAddress": "depthscale.keda:9090", "enableTLS": "false", "unsafeSsl": "true"}
    assert set(keda) == KEDA_KEYS
    assert parse_metadata({**BASE, **keda}) == parse_metadata(BASE)


def test_from_env_keys_resolved_by_keda_count_as_the_key() -> None:
    parsed = parse_metadata({"broker": "main", "queuesFromEnv": "a,b", "maxReplicasFromEnv": "7"})
    assert parsed.spec.queues == ("a", "b")
    assert parsed.config.max_replicas == 7


def test_the_keys_are_the_documented_ones() -> None:
    issue_keys = {
        "broker", "queues", "scaleUpPending", "scaleDownPending", "stabilizationWindowSeconds",
        "warmupSeconds", "minReplicas", "maxReplicas", "replicaConcurrency", "bufferReplicas",
        "mode", "includeUnacked", "priorityLevels", "keyPrefix",
    }  # fmt: skip
    extras = {"model", "scaleDownStep", "lookaheadSeconds", "growthWindowSeconds"}
    extras |= {"scaleDownPeriodSeconds", "scaleUpOnInFlight", "scaleUpFactor", "preset"}
    extras |= {"rule", "headroom", "reactToRecent", "seasonalFraction", "seasonalDecay"}
    extras |= {"seasonalPeriodsSeconds", "seasonalSlotSeconds"}
    assert {key.name for key in KEYS} == issue_keys | extras


MALFORMED: list[tuple[str, dict[str, str], str, str]] = [
    # (case, metadata, key named, words in the problem)
    ("missing broker", {"queues": "q"}, "broker", "required"),
    ("missing queues", {"broker": "main"}, "queues", "required"),
    ("blank queues", {"broker": "main", "queues": "  "}, "queues", "required"),
    ("empty queue in list", {**BASE, "queues": "a,,b"}, "queues", "empty queue name"),
    ("duplicate queue", {**BASE, "queues": "a,b,a"}, "queues", "listed twice"),
    ("unknown key", {**BASE, "listLength": "5"}, "listLength", "unknown key"),
    ("typo gets a hint", {**BASE, "scaleupPending": "5"}, "scaleupPending", "scaleUpPending"),
    ("broker URL", {**BASE, "broker": "redis://:pw@evil:6379/0"}, "broker", "URL"),
    ("queue URL", {**BASE, "queues": "redis://x/0"}, "queues", "URL"),
    ("password key", {**BASE, "password": "hunter2"}, "password", "credentials"),
    ("host key", {**BASE, "host": "10.0.0.1"}, "host", "credentials"),
    ("address key", {**BASE, "brokerAddress": "10.0.0.1:6379"}, "brokerAddress", "credentials"),
    ("bad broker name", {**BASE, "broker": "a b"}, "broker", "not a name"),
    ("not a number", {**BASE, "scaleUpPending": "fifty"}, "scaleUpPending", "not a number"),
    ("unknown preset", {**BASE, "preset": "fast"}, "preset", "not one of"),
    ("zero period", {**BASE, "scaleDownPeriodSeconds": "0"}, "scaleDownPeriodSeconds", "> 0"),
    ("factor below one", {**BASE, "scaleUpFactor": "0.5"}, "scaleUpFactor", "within [1, 1000]"),
    ("bad in-flight flag", {**BASE, "scaleUpOnInFlight": "maybe"}, "scaleUpOnInFlight", "boolean"),
    ("nan", {**BASE, "scaleUpPending": "nan"}, "scaleUpPending", "not a number"),
    ("infinity", {**BASE, "warmupSeconds": "inf"}, "warmupSeconds", "not a number"),
    ("zero up threshold", {**BASE, "scaleUpPending": "0"}, "scaleUpPending", "> 0"),
    ("down above up", {**BASE, "scaleDownPending": "60"}, "scaleDownPending", "scaleUpPending"),
    (
        "negative window",
        {**BASE, "stabilizationWindowSeconds": "-1"},
        "stabilizationWindowSeconds",
        "within [0, ",
    ),
    ("negative warm-up", {**BASE, "warmupSeconds": "-5"}, "warmupSeconds", "within [0, "),
    ("fractional replicas", {**BASE, "maxReplicas": "2.5"}, "maxReplicas", "whole number"),
    ("negative min", {**BASE, "minReplicas": "-1"}, "minReplicas", "within [0, "),
    (
        "max below min",
        {**BASE, "minReplicas": "5", "maxReplicas": "3"},
        "maxReplicas",
        "minReplicas",
    ),
    ("max zero", {**BASE, "maxReplicas": "0"}, "maxReplicas", ">= max"),
    ("zero step", {**BASE, "scaleDownStep": "0"}, "scaleDownStep", "within [1, "),
    ("zero concurrency", {**BASE, "replicaConcurrency": "0"}, "replicaConcurrency", "within [1, "),
    (
        "buffer over max",
        {**BASE, "bufferReplicas": "5", "maxReplicas": "5"},
        "bufferReplicas",
        "maxReplicas",
    ),
    ("bad mode", {**BASE, "mode": "auto"}, "mode", "replicas, pending"),
    ("bad bool", {**BASE, "includeUnacked": "yes"}, "includeUnacked", "boolean"),
    ("bad priority", {**BASE, "priorityLevels": "0,3,x"}, "priorityLevels", "whole number"),
    ("negative priority", {**BASE, "priorityLevels": "0,-3"}, "priorityLevels", "within [0, 255]"),
    ("duplicate priority", {**BASE, "priorityLevels": "0,3,3"}, "priorityLevels", "twice"),
    ("empty number", {**BASE, "minReplicas": ""}, "minReplicas", "empty value"),
    ("huge value", {**BASE, "queues": "q" * 5000}, "queues", "longer than"),
    # KEDA parses numbers with Go's strconv: ASCII decimal digits only.
    ("arabic digits", {**BASE, "maxReplicas": "١٢"}, "maxReplicas", "whole number"),
    ("fullwidth digits", {**BASE, "scaleUpPending": "５０"}, "scaleUpPending", "not a number"),
    ("underscore digits", {**BASE, "minReplicas": "1_0"}, "minReplicas", "whole number"),
    ("above int32", {**BASE, "maxReplicas": "2147483648"}, "maxReplicas", "within [0, 2147483647]"),
    (
        "min equal max huge",
        {**BASE, "minReplicas": "99999999999999999999", "maxReplicas": "99999999999999999999"},
        "minReplicas",
        "whole number",
    ),
    ("overflowing float", {**BASE, "scaleUpPending": "1e400"}, "scaleUpPending", "out of range"),
    ("huge threshold", {**BASE, "scaleUpPending": "1e300"}, "scaleUpPending", "within [0, 1e+09]"),
    ("denormal threshold", {**BASE, "scaleUpPending": "1e-320"}, "scaleUpPending", ">= 0.001"),
    (
        "huge window",
        {**BASE, "stabilizationWindowSeconds": "1e300"},
        "stabilizationWindowSeconds",
        "within [0, 604800]",
    ),
    (
        "huge priority",
        {**BASE, "priorityLevels": "0,1000000000000"},
        "priorityLevels",
        "whole number",
    ),
    (
        "many priorities",
        {**BASE, "priorityLevels": ",".join(map(str, range(40)))},
        "priorityLevels",
        "more than 32",
    ),
    ("control character", {**BASE, "queues": "llm\x00x"}, "queues", "control"),
    ("kombu separator", {**BASE, "queues": "llm\x06\x16" + "3"}, "queues", "control"),
    (
        "too many queues",
        {**BASE, "queues": ",".join(f"q{i}" for i in range(33))},
        "queues",
        "more than 32",
    ),
    (
        "too many slots",
        {**BASE, "seasonalSlotSeconds": "60", "seasonalPeriodsSeconds": "604800"},
        "seasonalPeriodsSeconds",
        "at most 2048",
    ),
    ("long key", {**BASE, "k" * 200: "1"}, "k" * 40 + "…", "longer than 128"),
    (
        "many keys",
        {**BASE, **{f"k{i}": "1" for i in range(70)}},
        "scalerMetadata",
        "more than 64 keys",
    ),
    ("key and FromEnv", {**BASE, "queuesFromEnv": "b"}, "queuesFromEnv", "both"),
]


@pytest.mark.parametrize(
    ("metadata", "key", "words"),
    [pytest.param(m, k, w, id=case) for case, m, k, w in MALFORMED],
)
def test_malformed_metadata_names_the_key(metadata: dict[str, str], key: str, words: str) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(metadata)
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: ")
    assert words in caught.value.problem


def test_refusal_never_echoes_the_secret() -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata({**BASE, "broker": "redis://:hunter2@evil:6379/0"})
    assert "hunter2" not in str(caught.value)


_KEYS = st.sampled_from([k.name for k in KEYS] + sorted(KEDA_KEYS) + ["queuesFromEnv", "x"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.one_of(_KEYS, st.text(max_size=12)), st.text(max_size=40), max_size=8))
def test_any_input_parses_or_names_a_key(metadata: dict[str, str]) -> None:
    error: MetadataError | None = None
    try:
        parse_metadata(metadata)
    except MetadataError as exc:  # anything else fails the test
        error = exc
    if error is not None:
        blamable = set(metadata) | {"broker", "queues"}
        blamable |= {k.removesuffix("FromEnv") for k in metadata}
        assert error.key in blamable
        assert str(error).startswith(f"{error.key}: ")
