"""The bundled GPU price table: USD per node-hour, on-demand and spot, each row with its source.

Figures for AWS us-east-1 (g5.xlarge $1.006/h, g6.xlarge $0.8048/h, p4d.24xlarge $21.96/h and
p5.48xlarge $55.04/h after the June 2025 cut) and the 22-46% spot range come from the providers'
pricing pages (each row of the table names its page). Spot prices in the table are
estimates (35% of on-demand) and say so in their ``estimated`` column; a scenario's node pool can
override any price.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

_COLUMNS = (
    "provider",
    "region",
    "instance_type",
    "gpu_type",
    "gpus",
    "on_demand_per_hour",
    "spot_per_hour",
    "estimated",
    "source",
)


class PriceTableError(ValueError):
    """The price table is malformed (``line`` is 1-based) or has no row for an instance type."""


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One instance type's price.

    gpus:               GPUs per node (instance).
    on_demand_per_hour: USD per node-hour, on-demand.
    spot_per_hour:      USD per node-hour, spot (often an estimate, see ``estimated``).
    estimated:          which prices are estimates: "", "spot" or "on_demand+spot".
    source:             the pricing page and date the figures were read from.
    """

    provider: str
    region: str
    instance_type: str
    gpu_type: str
    gpus: int
    on_demand_per_hour: float
    spot_per_hour: float
    estimated: str
    source: str


def parse_price_table(text: str, name: str = "gpu_prices.csv") -> dict[str, PriceRow]:
    """Rows keyed by instance type; a bad row raises ``PriceTableError`` naming ``name:line``."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != _COLUMNS:
        raise PriceTableError(f"{name}:1: header must be {','.join(_COLUMNS)}")
    rows: dict[str, PriceRow] = {}
    for line, raw in enumerate(reader, start=2):
        try:
            row = PriceRow(
                provider=raw["provider"],
                region=raw["region"],
                instance_type=raw["instance_type"],
                gpu_type=raw["gpu_type"],
                gpus=int(raw["gpus"]),
                on_demand_per_hour=float(raw["on_demand_per_hour"]),
                spot_per_hour=float(raw["spot_per_hour"]),
                estimated=raw["estimated"],
                source=raw["source"],
            )
        except (TypeError, ValueError) as exc:
            raise PriceTableError(f"{name}:{line}: {exc}") from None
        if row.gpus < 1 or row.on_demand_per_hour <= 0 or row.spot_per_hour <= 0:
            raise PriceTableError(f"{name}:{line}: gpus and prices must be positive")
        if not row.source:
            raise PriceTableError(f"{name}:{line}: source must not be empty")
        if row.instance_type in rows:
            raise PriceTableError(f"{name}:{line}: duplicate instance_type {row.instance_type}")
        rows[row.instance_type] = row
    return rows


@cache
def bundled_prices() -> dict[str, PriceRow]:
    """The table shipped in ``simulator/data/gpu_prices.csv``."""
    text = resources.files("simulator").joinpath("data/gpu_prices.csv").read_text("utf-8")
    return parse_price_table(text)


def lookup(instance_type: str) -> PriceRow:
    """The bundled row for ``instance_type``; ``PriceTableError`` lists the known types if absent."""
    table = bundled_prices()
    try:
        return table[instance_type]
    except KeyError:
        known = ", ".join(sorted(table))
        raise PriceTableError(
            f"no bundled price for instance type {instance_type!r} (known: {known}); "
            "set price_per_hour on the node pool"
        ) from None
