"""Traffic traces: columnar in-memory form, loaders for the formats met in the wild, what-if
transformations and a seeded synthetic generator."""

from simulator.traces.bins import ArrivalBins, LengthMix, bins_from_trace
from simulator.traces.loader import (
    FORMATS,
    Format,
    default_model_name,
    detect_format,
    estimated_requests,
    load_bins,
    load_trace,
)
from simulator.traces.servegen import servegen_bins
from simulator.traces.synth import (
    SynthModel,
    SynthSpec,
    benchmark_spec,
    benchmark_trace,
    synthesize,
)
from simulator.traces.trace import DEFAULT_EPOCH_S, Trace, TraceError, build_trace
from simulator.traces.transform import (
    merge,
    rename_models,
    scale_rate,
    time_scale,
    window,
)
from simulator.traces.write import write_trace

__all__ = [
    "DEFAULT_EPOCH_S",
    "FORMATS",
    "ArrivalBins",
    "Format",
    "LengthMix",
    "SynthModel",
    "SynthSpec",
    "Trace",
    "TraceError",
    "benchmark_spec",
    "benchmark_trace",
    "bins_from_trace",
    "build_trace",
    "default_model_name",
    "detect_format",
    "estimated_requests",
    "load_bins",
    "load_trace",
    "merge",
    "rename_models",
    "scale_rate",
    "servegen_bins",
    "synthesize",
    "time_scale",
    "window",
    "write_trace",
]
