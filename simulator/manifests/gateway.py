"""The gateway's routing table: model names (served id and short name) -> model Services."""

from __future__ import annotations

import re

from simulator.manifests.common import VLLM_PORT, Obj, RenderError, labels
from simulator.scenario import Scenario

_NGINX_UNSAFE = re.compile(r"[\s\"'\\;{}$#]")


def _nginx_name(path: str, value: str) -> str:
    if not value or value.startswith("~") or _NGINX_UNSAFE.search(value) or len(value) > 256:
        raise RenderError(
            path,
            f"{value!r} cannot be a gateway route (no whitespace, quotes, backslashes, ';', "
            "'{', '}', '$', '#', no leading '~', at most 256 characters)",
        )
    return value


def gateway_routes(scenario: Scenario) -> Obj:
    """ConfigMap ``gateway-routes``: model names -> upstreams, one upstream per model Service.
    Only models served online (``online.share`` > 0) are routed: they keep a replica and their
    ScaledObject sees the gateway's load (docs/online.md); any other may be at zero replicas,
    where the gateway could only answer 502. A name with no route is answered 404."""
    routes: dict[str, str] = {}
    online = [m for m in scenario.models.values() if m.served_online]
    for model in online:
        for key, path in ((model.name, "name"), (model.served_model, "served_model")):
            _nginx_name(f"models.{model.name}.{path}", key)
            owner = routes.setdefault(key, model.name)
            if owner != model.name:
                raise RenderError(
                    f"models.{model.name}.{path}", f"{key!r} already routes to model {owner}"
                )
    route_lines = [f'"{key}" {routes[key]};' for key in sorted(routes)]
    upstream_lines = [
        f"upstream {m.name} {{ server {m.name}:{VLLM_PORT}; keepalive 16; }}"
        for m in sorted(online, key=lambda m: m.name)
    ]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "gateway-routes", "labels": labels("depthscale-gateway", "gateway")},
        "data": {
            "routes.map": "".join(f"{line}\n" for line in route_lines),
            "upstreams.conf": "".join(f"{line}\n" for line in upstream_lines),
        },
    }
