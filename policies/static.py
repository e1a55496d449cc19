"""Static provisioning: the same replica count all the time.

``StaticPolicy(n)`` is "static N replicas"; static peak provisioning is ``StaticPolicy`` with the
count the trace's busiest window needs (``policies.schedule.peak_replicas``).

Pure: ``decide`` reads nothing but its arguments, and its answer never changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.types import Decision, Observation, Reason


class StaticError(ValueError):
    """A static policy's replica count is invalid."""


@dataclass(frozen=True, slots=True)
class StaticPolicy:
    """replicas: held at every instant, >= 0. label: name in reports and logs."""

    replicas: int
    label: str = "static"

    def __post_init__(self) -> None:
        if self.replicas < 0:
            raise StaticError(f"replicas: must be >= 0, got {self.replicas}")

    @property
    def name(self) -> str:
        return self.label

    @property
    def metric_target(self) -> float:
        """The metric is the desired replica count, target 1 per replica."""
        return 1.0

    def initial_state(self) -> None:
        return None

    def warm_state(self, replicas: int) -> None:
        """Stateless: the count is fixed, whatever ran before."""
        return None

    def decide(self, observation: Observation, state: None) -> tuple[Decision, None]:
        detail = f"static: {self.replicas} replicas ({observation.pending} pending)"
        return Decision(self.replicas, Reason.STATIC, detail, float(self.replicas)), None
