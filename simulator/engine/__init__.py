"""The simulation engine: a trace through modelled KEDA, HPA, GPU node pools and vLLM replicas.

``run(trace, scenario, policies)`` replays the trace once per policy, with the same seed (so
every policy meets the same launch delays and start-up times in the same order), and returns
the ``SimulationResult`` the report reads. The per-request FCFS queue runs in a compiled kernel
(``kernel``); the control loop (``loop``) runs in Python on the KEDA/HPA tick grid and calls the
policy objects of ``policies/`` — the same code the live scaler runs.
"""

from __future__ import annotations

from simulator.engine.runner import run
from simulator.engine.setup import DRAIN_S, EngineError, PolicyTriple

__all__ = ["DRAIN_S", "EngineError", "PolicyTriple", "run"]
