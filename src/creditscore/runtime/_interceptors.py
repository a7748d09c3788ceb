"""The server interceptor that maps domain errors to ``google.rpc.Status``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from ._errors import DomainError, to_status

__all__ = ["ErrorInterceptor"]

log = logging.getLogger("creditscore.runtime")


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns a raised ``DomainError`` into a status with ``ErrorInfo`` (and
    ``BadRequest``) details; any other exception into INTERNAL without leaking
    its text. ``domain`` is the service's ErrorInfo domain, e.g.
    ``consent.creditscore``."""

    def __init__(self, domain: str) -> None:
        self.domain = domain

    async def _abort(self, context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
        if isinstance(exc, DomainError):
            error = exc
        else:
            log.exception("unhandled error in %s", method)
            error = DomainError("internal error", reason="INTERNAL")
        status = to_status(error, self.domain)
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        abort = self._abort

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    await abort(context, exc, method)

            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
            return factory(
                unary_response,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        inner_stream = handler.unary_stream or handler.stream_stream

        async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in inner_stream(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await abort(context, exc, method)

        async def written_response(request: Any, context: grpc.aio.ServicerContext) -> None:
            # A streaming handler may be a coroutine that answers through
            # ``context.write`` (the health service's Watch is one) rather than an
            # async generator: it is awaited, not iterated.
            try:
                await inner_stream(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await abort(context, exc, method)

        wrapper = stream_response if inspect.isasyncgenfunction(inner_stream) else written_response
        factory = (
            grpc.unary_stream_rpc_method_handler
            if handler.unary_stream
            else grpc.stream_stream_rpc_method_handler
        )
        return factory(
            wrapper,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
