"""GPU node pools, replica pods and warm-buffer placeholders, at control-instant granularity.

What it models (Karpenter and GKE node launch times, vLLM v0.6 throughput; every figure comes from the scenario):

- A replica pod needs ``gpus_per_replica`` GPUs on one node of its model's pool. The scheduler
  binds it, in this order, to: a ready node with room (best fit: fewest free GPUs left); a ready
  node held by a warm-buffer placeholder, which it preempts at once; a node still launching with
  room (Karpenter nominates pods to in-flight nodes); a node launched now. A pool at
  ``max_nodes`` leaves the pod pending until room appears.
- Launch-to-ready is drawn from the pool's ``launch_s``; the pod then starts up (image pull +
  weight load) for a draw from the model's ``startup_s`` and serves from
  ``max(now, node ready) + startup``.
- Scale-down removes pending pods first, then warming ones (newest first), then ready ones with
  the fewest requests in service (Kubernetes' ReplicaSet ranking, idle first). A ready replica
  drains: it takes no new request and holds its GPUs until its last request ends.
- A node with no pod at all (real or placeholder) for ``consolidate_after_s`` is removed
  (Karpenter ``WhenEmpty``).
- Spot nodes get an interruption notice after an exponential time (``spot_interruptions_per_hour``);
  the node is cordoned, its replicas drain and are replaced at once elsewhere, and the node is
  gone ``spot_notice_s`` later. Requests in service on it are assumed to finish.
- Warm buffer: whole-node low-priority placeholder pods keep spare nodes (a fixed count, or
  enough that real pods use at most ``target_utilization`` of the pool's GPUs); a real replica
  preempts one and skips the node launch; the evicted placeholder asks for a new node.

Cost is node lifetime (launch to removal) × the pool's USD per node-hour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.engine.queue import ServingQueue

INF = math.inf


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """A node pool as the engine needs it.

    gpus_per_node:       GPUs per node, >= 1.
    usd_per_hour:        price of one node-hour at this pool's capacity type, USD.
    launch_s:            (low, high) seconds, node launch-to-ready drawn uniformly.
    consolidate_after_s: seconds a node must stay empty before removal.
    spot:                spot capacity (interruptions apply).
    interruptions_per_hour: spot interruption rate per node, per hour.
    notice_s:            seconds from interruption notice to node removal.
    max_nodes:           cap on nodes in the pool, None for none.
    buffer_nodes:        spare nodes held by placeholders (fixed), or None.
    buffer_utilization:  keep real GPU use at or below this share of the pool, or None.
    """

    name: str
    gpus_per_node: int
    usd_per_hour: float
    launch_s: tuple[float, float] = (180.0, 300.0)
    consolidate_after_s: float = 900.0
    spot: bool = False
    interruptions_per_hour: float = 0.0
    notice_s: float = 120.0
    max_nodes: int | None = None
    buffer_nodes: int | None = None
    buffer_utilization: float | None = None


@dataclass(slots=True)
class Node:
    """One node. Times in seconds; ``gone_s`` is INF while it runs."""

    id: int
    pool: int
    gpus: int
    launched_s: float
    ready_s: float
    free: int
    real_pods: int = 0
    placeholders: int = 0
    interrupt_s: float = INF
    gone_s: float = INF
    cordoned: bool = False
    empty_since_s: float | None = None


@dataclass(slots=True)
class Pod:
    """One replica pod. ``handle`` is its slot block in the model's queue (-1 while pending)."""

    id: int
    model: int
    gpus: int
    created_s: float
    node: Node | None = None
    handle: int = -1
    bound_s: float = INF
    ready_s: float = INF
    gone_s: float = INF


@dataclass(slots=True)
class PoolState:
    spec: PoolSpec
    nodes: list[Node] = field(default_factory=list)
    placeholders_pending: int = 0
    launches: int = 0
    node_s: float = 0.0  # node-seconds of removed nodes

    def alive(self) -> int:
        return len(self.nodes)


class Cluster:
    """All pools, pods and the random draws of one run (one ``np.random.Generator`` stream per
    kind of draw, so policies compared with the same seed see the same launch delays in order)."""

    def __init__(
        self,
        pools: list[PoolSpec],
        model_pool: list[int],
        model_gpus: list[int],
        model_startup_s: list[tuple[float, float]],
        queues: list[ServingQueue],
        seed: int,
    ) -> None:
        self.pools = [PoolState(p) for p in pools]
        self.model_pool = model_pool
        self.model_gpus = model_gpus
        self.model_startup_s = model_startup_s
        self.queues = queues
        launch, startup, spot = np.random.SeedSequence(seed).spawn(3)
        self.rng_launch = np.random.default_rng(launch)
        self.rng_startup = np.random.default_rng(startup)
        self.rng_spot = np.random.default_rng(spot)
        n_models = len(model_pool)
        self.live: list[list[Pod]] = [[] for _ in range(n_models)]
        self.draining: list[Pod] = []
        self.launches_by_model = [0] * n_models  # node launches a model's pod asked for
        self.held_slot_s = [0.0] * n_models  # slot-seconds of pods bound to nodes
        self.gpu_share_s = [0.0] * n_models  # GPU-seconds held, for cost attribution
        self.pool_models: list[list[int]] = [
            [m for m, p in enumerate(model_pool) if p == i] for i in range(len(pools))
        ]
        self._all_ready_s: list[float | None] = [None] * n_models  # when every live pod is ready
        self.next_id = 0
        self.next_due = INF
        self.dirty = True
        self.last_account_s = 0.0

    # -- queries -------------------------------------------------------------------------------

    def replicas(self, model: int) -> int:
        """The Deployment's replica count (pods that are neither stopping nor gone)."""
        return len(self.live[model])

    def ready_warming(self, model: int, t: float) -> tuple[int, int]:
        """(ready, warming) replicas of ``model`` at ``t``."""
        pods = self.live[model]
        all_ready_s = self._all_ready_s[model]
        if all_ready_s is None:
            all_ready_s = max((p.ready_s for p in pods), default=-INF)
            self._all_ready_s[model] = all_ready_s
        if t >= all_ready_s:
            return len(pods), 0
        ready = sum(1 for p in pods if p.ready_s <= t)
        return ready, len(pods) - ready

    def nodes_in_pool(self, pool: int) -> int:
        return self.pools[pool].alive()

    # -- scaling -------------------------------------------------------------------------------

    def set_replicas(self, model: int, n: int, t: float) -> None:
        """Create or remove pods of ``model`` so that ``n`` are live, at ``t``."""
        self.account(t)
        self._all_ready_s[model] = None
        pods = self.live[model]
        if n > len(pods):
            for _ in range(n - len(pods)):
                pod = Pod(self.next_id, model, self.model_gpus[model], t)
                self.next_id += 1
                pods.append(pod)
                self._schedule(pod, t)
        elif n < len(pods):
            self.queues[model].advance(t)
            for pod in self._removal_order(model, t)[: len(pods) - n]:
                pods.remove(pod)
                self._stop(pod, t)
        self.dirty = True

    def provision(self, model: int, replicas: int, t: float) -> int:
        """Start ``model`` with ``replicas`` pods already serving at ``t``, on nodes already up
        (a fleet that was running before the trace began: no launch or start-up delay, no random
        draw but spot interruptions, not counted as launches). Packs pods onto ready nodes with
        room, then onto new ones up to the pool's ``max_nodes``. Returns the pods provisioned."""
        self.account(t)
        index = self.model_pool[model]
        pool = self.pools[index]
        spec = pool.spec
        gpus = self.model_gpus[model]
        placed = 0
        for _ in range(replicas):
            fits = [n for n in pool.nodes if not n.cordoned and n.ready_s <= t and n.free >= gpus]
            if fits:
                node = min(fits, key=lambda n: (n.free, n.id))
            elif spec.max_nodes is not None and pool.alive() >= spec.max_nodes:
                break
            else:
                node = Node(self.next_id, index, spec.gpus_per_node, t, t, spec.gpus_per_node)
                self.next_id += 1
                if spec.spot and spec.interruptions_per_hour > 0:
                    node.interrupt_s = t + float(
                        self.rng_spot.exponential(3600.0 / spec.interruptions_per_hour)
                    )
                pool.nodes.append(node)
            pod = Pod(self.next_id, model, gpus, t, node=node, bound_s=t, ready_s=t)
            self.next_id += 1
            node.free -= gpus
            node.real_pods += 1
            node.empty_since_s = None
            pod.handle = self.queues[model].add_replica(t)
            self.live[model].append(pod)
            placed += 1
        self._all_ready_s[model] = None
        self.dirty = True
        return placed

    def _removal_order(self, model: int, t: float) -> list[Pod]:
        queue = self.queues[model]

        def rank(pod: Pod) -> tuple[int, int, float]:
            if pod.node is None:
                return (0, 0, -pod.created_s)
            if pod.ready_s > t:
                return (1, 0, -pod.created_s)
            return (2, queue.replica_busy(pod.handle, t), -pod.created_s)

        return sorted(self.live[model], key=rank)

    def _stop(self, pod: Pod, t: float, deadline: float = INF) -> None:
        if pod.node is None:
            return
        end = min(self.queues[pod.model].stop_replica(pod.handle, t), deadline)
        pod.gone_s = end
        if end <= t:
            self._release(pod, t)
        else:
            self.draining.append(pod)
            self.next_due = min(self.next_due, end)

    def _release(self, pod: Pod, t: float) -> None:
        node = pod.node
        assert node is not None
        self.queues[pod.model].release(pod.handle)
        self.held_slot_s[pod.model] += (pod.gone_s - pod.bound_s) * self.queues[
            pod.model
        ].concurrency
        node.free += pod.gpus
        node.real_pods -= 1
        if node.real_pods == 0 and node.placeholders == 0:
            node.empty_since_s = pod.gone_s
        pod.node = None

    # -- scheduling ----------------------------------------------------------------------------

    def _schedule(self, pod: Pod, t: float) -> bool:
        pool = self.pools[self.model_pool[pod.model]]
        node = self._place(pool, pod.gpus, t, pod.model)
        if node is None:
            return False
        node.free -= pod.gpus
        node.real_pods += 1
        node.empty_since_s = None
        low, high = self.model_startup_s[pod.model]
        startup = float(self.rng_startup.uniform(low, high)) if high > low else low
        pod.node = node
        pod.bound_s = t
        pod.ready_s = max(t, node.ready_s) + startup
        pod.handle = self.queues[pod.model].add_replica(pod.ready_s)
        self._all_ready_s[pod.model] = None
        return True

    def _place(self, pool: PoolState, gpus: int, t: float, model: int) -> Node | None:
        usable = [n for n in pool.nodes if not n.cordoned]
        ready = [n for n in usable if n.ready_s <= t]
        launching = sorted((n for n in usable if n.ready_s > t), key=lambda n: (n.ready_s, n.id))
        fits = [n for n in ready if n.free >= gpus]
        if fits:
            return min(fits, key=lambda n: (n.free, n.id))
        for group in (ready, launching):
            for node in group:
                if node.placeholders and node.free + node.placeholders * node.gpus >= gpus:
                    self._evict_placeholder(pool, node)
                    return node
            if group is ready:
                for node in launching:
                    if node.free >= gpus:
                        return node
        launched = self._launch(pool, t)
        if launched is not None:
            self.launches_by_model[model] += 1
        return launched

    def _evict_placeholder(self, pool: PoolState, node: Node) -> None:
        node.placeholders -= 1
        node.free += node.gpus
        pool.placeholders_pending += 1
        self.dirty = True

    def _launch(self, pool: PoolState, t: float) -> Node | None:
        spec = pool.spec
        if spec.max_nodes is not None and pool.alive() >= spec.max_nodes:
            return None
        low, high = spec.launch_s
        delay = float(self.rng_launch.uniform(low, high)) if high > low else low
        node = Node(
            self.next_id,
            self.pools.index(pool),
            spec.gpus_per_node,
            t,
            t + delay,
            spec.gpus_per_node,
        )
        self.next_id += 1
        if spec.spot and spec.interruptions_per_hour > 0:
            node.interrupt_s = t + float(
                self.rng_spot.exponential(3600.0 / spec.interruptions_per_hour)
            )
        pool.nodes.append(node)
        pool.launches += 1
        return node

    # -- maintenance ---------------------------------------------------------------------------

    def maintain(self, t: float) -> None:
        """Apply everything due by ``t``: drains ending, spot notices and removals, pending pods,
        warm-buffer placeholders, consolidation of empty nodes."""
        if t < self.next_due and not self.dirty:
            return
        self.account(t)
        self._finish_drains(t)
        for i, pool in enumerate(self.pools):
            self._spot(i, pool, t)
            self._retry_pending(i, t)
            self._buffer(pool, t)
            self._consolidate(pool, t)
        self.dirty = False
        self.next_due = self._next_due(t)

    def _finish_drains(self, t: float) -> None:
        done = [p for p in self.draining if p.gone_s <= t]
        if done:
            self.draining = [p for p in self.draining if p.gone_s > t]
            for pod in done:
                self._release(pod, t)

    def _spot(self, index: int, pool: PoolState, t: float) -> None:
        for node in list(pool.nodes):
            if node.gone_s <= t:
                self._remove_node(pool, node)
            elif not node.cordoned and node.interrupt_s <= t:
                node.cordoned = True
                node.gone_s = t + pool.spec.notice_s
                pool.placeholders_pending += node.placeholders
                node.free += node.placeholders * node.gpus
                node.placeholders = 0
                for model in self.pool_models[index]:
                    hit = [p for p in self.live[model] if p.node is node]
                    if not hit:
                        continue
                    self.queues[model].advance(t)
                    self._all_ready_s[model] = None
                    for pod in hit:
                        self.live[model].remove(pod)
                        self._stop(pod, t, node.gone_s)
                    self.set_replicas(model, len(self.live[model]) + len(hit), t)

    def _retry_pending(self, index: int, t: float) -> None:
        for model in self.pool_models[index]:
            for pod in self.live[model]:
                if pod.node is None:
                    self._schedule(pod, t)

    def _buffer(self, pool: PoolState, t: float) -> None:
        spec = pool.spec
        if spec.buffer_nodes is None and spec.buffer_utilization is None:
            return
        if spec.buffer_nodes is not None:
            want = spec.buffer_nodes
        else:
            assert spec.buffer_utilization is not None
            used = sum(
                n.gpus - n.free - n.placeholders * n.gpus for n in pool.nodes if not n.cordoned
            )
            spare = math.ceil(used / spec.buffer_utilization - 1e-9) - used
            want = math.ceil(spare / spec.gpus_per_node)
        bound = [n for n in pool.nodes if n.placeholders]
        have = sum(n.placeholders for n in bound) + pool.placeholders_pending
        if want < have:
            drop = min(pool.placeholders_pending, have - want)
            pool.placeholders_pending -= drop
            extra = have - want - drop
            for node in sorted(bound, key=lambda n: (-n.ready_s, -n.id))[:extra]:
                node.placeholders -= 1
                node.free += node.gpus
                if node.real_pods == 0 and node.placeholders == 0:
                    node.empty_since_s = t
        elif want > have:
            pool.placeholders_pending += want - have
        while pool.placeholders_pending > 0:
            empty = [n for n in pool.nodes if not n.cordoned and n.free == n.gpus]
            host = min(empty, key=lambda n: (n.ready_s, n.id)) if empty else self._launch(pool, t)
            if host is None:
                break
            host.placeholders += 1
            host.free -= host.gpus
            host.empty_since_s = None
            pool.placeholders_pending -= 1

    def _consolidate(self, pool: PoolState, t: float) -> None:
        after = pool.spec.consolidate_after_s
        for node in list(pool.nodes):
            since = node.empty_since_s
            if (
                since is not None
                and not node.cordoned
                and node.real_pods == 0
                and node.placeholders == 0
                and t - since >= after
                and node.ready_s <= t
            ):
                node.gone_s = t
                self._remove_node(pool, node)

    def _remove_node(self, pool: PoolState, node: Node) -> None:
        pool.nodes.remove(node)
        pool.node_s += node.gone_s - node.launched_s

    def _next_due(self, t: float) -> float:
        due = min((p.gone_s for p in self.draining), default=INF)
        for pool in self.pools:
            for node in pool.nodes:
                due = min(due, node.gone_s, node.interrupt_s if not node.cordoned else INF)
                if node.empty_since_s is not None and node.real_pods == 0 and not node.placeholders:
                    due = min(
                        due, max(node.empty_since_s + pool.spec.consolidate_after_s, node.ready_s)
                    )
            if pool.placeholders_pending:
                due = t  # retry at the next instant
        if any(p.node is None for pods in self.live for p in pods):
            due = t
        return due

    # -- accounting ----------------------------------------------------------------------------

    def account(self, t: float) -> None:
        """Attribute GPU-seconds since the last call to models by the GPUs their pods hold."""
        dt = t - self.last_account_s
        if dt <= 0:
            return
        self.last_account_s = t
        for i, pool in enumerate(self.pools):
            models = self.pool_models[i]
            if not pool.nodes or not models:
                continue
            total = pool.alive() * pool.spec.gpus_per_node * dt
            if len(models) == 1:
                self.gpu_share_s[models[0]] += total
                continue
            held = [
                sum(p.gpus for p in self.live[m] if p.node is not None)
                + sum(p.gpus for p in self.draining if p.model == m)
                for m in models
            ]
            all_held = sum(held)
            for m, h in zip(models, held, strict=True):
                share = h / all_held if all_held else 1.0 / len(models)
                self.gpu_share_s[m] += total * share

    def finish(self, end_s: float) -> None:
        """Close the books at ``end_s``: bill running nodes, count pods' held slot time."""
        self.account(end_s)
        for pods in self.live:
            for pod in pods:
                if pod.node is not None:
                    self.held_slot_s[pod.model] += (end_s - pod.bound_s) * self.queues[
                        pod.model
                    ].concurrency
        for pod in self.draining:
            self.held_slot_s[pod.model] += (min(pod.gone_s, end_s) - pod.bound_s) * self.queues[
                pod.model
            ].concurrency
        for pool in self.pools:
            for node in pool.nodes:
                pool.node_s += min(node.gone_s, end_s) - node.launched_s
            pool.nodes = []
