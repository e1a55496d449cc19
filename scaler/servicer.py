"""KEDA's ``externalscaler.ExternalScaler`` on grpc.aio: protobuf in, ``ScalerService`` answers out.

This module only translates. It turns errors into gRPC status codes, so KEDA holds or falls
back instead of seeing a made-up 0 (kedacore/keda v2.20: externalscaler.proto and the metrics adapter):

- ``MetadataError`` (bad, unknown or missing key, unknown broker name) → INVALID_ARGUMENT,
  with the key named in the message;
- ``AccessDenied`` (the namespace may not use the broker, or a queue is outside the broker's
  allowed patterns) → PERMISSION_DENIED, naming the broker, never its location;
- ``BrokerUnavailable`` (broker down or refusing, broker or state store not answering within the
  read deadline, state store contention) → UNAVAILABLE. A broker timeout is UNAVAILABLE as well,
  not DEADLINE_EXCEEDED: that code tells a client *its own* deadline passed, and KEDA's polling
  calls carry none;
- anything unexpected → INTERNAL, logged with its traceback; the server keeps serving.

StreamMetricSpec answers UNIMPLEMENTED: KEDA then keeps using GetMetricSpec.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from proto import externalscaler_pb2 as pb
from proto import externalscaler_pb2_grpc as pb_grpc
from scaler.access import AccessDenied
from scaler.metadata import MetadataError, shown
from scaler.ports import Unavailable
from scaler.service import ScalerService, Target

log = logging.getLogger("depthscale.grpc")

_R = TypeVar("_R")
_REQUEST_FIELDS = frozenset({"name", "metricName"})  # request fields, not scalerMetadata keys

# Answers that never change are built once and shared: gRPC only serializes a response, and no
# code here modifies one after it is returned.
_ACTIVE = pb.IsActiveResponse(result=True)
_INACTIVE = pb.IsActiveResponse(result=False)


def _status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, MetadataError):
        where = "" if exc.key in _REQUEST_FIELDS else "scalerMetadata "
        return grpc.StatusCode.INVALID_ARGUMENT, f"{where}{exc}"
    if isinstance(exc, AccessDenied):
        return grpc.StatusCode.PERMISSION_DENIED, str(exc)
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc) or type(exc).__name__
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see scaler logs"


class ExternalScalerServicer(pb_grpc.ExternalScalerServicer):
    """The four (five) RPCs of KEDA's external scaler contract over one ``ScalerService``."""

    def __init__(self, service: ScalerService) -> None:
        self.service = service

    async def _answer(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        call: Callable[[], Awaitable[_R]],
    ) -> _R:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            return await call()
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:
            code, message = _status_of(exc)
            if code is grpc.StatusCode.INTERNAL:
                log.exception("%s failed", method)
            else:
                log.info(
                    "%s: %s %s",
                    method,
                    code.name,
                    message,
                    extra={"fields": {"event": "rpc-error", "method": method, "code": code.name}},
                )
        finally:
            self.service.metrics.observe_rpc(method, code.name, time.perf_counter() - started)
        await _abort(context, code, message)

    def _target(self, ref: pb.ScaledObjectRef) -> Target:
        return self.service.resolve(ref.namespace, ref.name, ref.scalerMetadata)

    async def IsActive(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.IsActiveResponse:
        async def call() -> pb.IsActiveResponse:
            evaluation = await self.service.evaluate(self._target(request))
            return _ACTIVE if evaluation.decision.active else _INACTIVE

        return await self._answer("IsActive", context, call)

    async def GetMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetMetricSpecResponse:
        async def call() -> pb.GetMetricSpecResponse:
            # The spec needs no broker read: the name and target follow from the metadata alone,
            # so KEDA can build the HPA even while the broker is down.
            target = self._target(request)
            size = target.policy.metric_target
            spec = pb.MetricSpec(
                metricName=target.metric_name, targetSize=max(1, round(size)), targetSizeFloat=size
            )
            return pb.GetMetricSpecResponse(metricSpecs=[spec])

        return await self._answer("GetMetricSpec", context, call)

    async def GetMetrics(
        self, request: pb.GetMetricsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetMetricsResponse:
        async def call() -> pb.GetMetricsResponse:
            target = self._target(request.scaledObjectRef)
            if request.metricName and request.metricName != target.metric_name:
                raise MetadataError(
                    "metricName",
                    f"{shown(request.metricName)} is not this trigger's metric "
                    f"{target.metric_name!r} (see GetMetricSpec)",
                )
            value = (await self.service.evaluate(target)).decision.metric_value
            metric = pb.MetricValue(
                metricName=target.metric_name,
                metricValue=round(value),
                metricValueFloat=value,
            )
            return pb.GetMetricsResponse(metricValues=[metric])

        return await self._answer("GetMetrics", context, call)

    async def StreamIsActive(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.IsActiveResponse]:
        try:
            target = self._target(request)
        except (MetadataError, AccessDenied) as exc:
            code, message = _status_of(exc)
            self.service.metrics.observe_rpc("StreamIsActive", code.name, 0.0)
            await _abort(context, code, message)
        try:
            async for active in self.service.watch_active(target):
                yield pb.IsActiveResponse(result=active)
        except Exception as exc:  # watch_active absorbs broker trouble; this is a bug
            log.exception("StreamIsActive failed")
            code, message = _status_of(exc)
            self.service.metrics.observe_rpc("StreamIsActive", code.name, 0.0)
            await _abort(context, code, message)

    async def StreamMetricSpec(
        self, request: pb.ScaledObjectRef, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.GetMetricSpecResponse]:
        await _abort(
            context,
            grpc.StatusCode.UNIMPLEMENTED,
            "StreamMetricSpec is not implemented: the metric spec only changes with the "
            "ScaledObject, use GetMetricSpec",
        )
        yield pb.GetMetricSpecResponse()  # pragma: no cover - unreachable, makes this a generator


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str
) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover
