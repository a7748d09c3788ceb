"""The server interceptor that maps domain errors to ``google.rpc.Status``."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import grpc

from ._errors import DomainError, to_status
from ._handlers import Context, Continuation, Handler, streaming, unary, with_streaming, with_unary

__all__ = ["ErrorInterceptor"]

log = logging.getLogger("creditscore.runtime")


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns a raised ``DomainError`` into a status with ``ErrorInfo`` (and
    ``BadRequest``) details; any other exception into INTERNAL without leaking
    its text. ``domain`` is the service's ErrorInfo domain, e.g.
    ``consent.creditscore``."""

    def __init__(self, domain: str) -> None:
        self.domain = domain

    async def _abort(self, context: Context, exc: BaseException, method: str) -> None:
        if isinstance(exc, DomainError):
            error = exc
        else:
            log.exception("unhandled error in %s", method)
            error = DomainError("internal error", reason="INTERNAL")
        status = to_status(error, self.domain)
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        abort = self._abort

        inner = unary(handler)
        if inner is not None:

            async def unary_response(request: Any, context: Context) -> Any:
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status
                    await abort(context, exc, method)

            return with_unary(handler, unary_response)

        inner_stream = streaming(handler)

        async def stream_response(request: Any, context: Context) -> AsyncIterator[Any]:
            try:
                async for item in cast("AsyncIterator[Any]", inner_stream(request, context)):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await abort(context, exc, method)

        async def written_response(request: Any, context: Context) -> None:
            # A streaming handler may be a coroutine that answers through
            # ``context.write`` (the health service's Watch is one) rather than an
            # async generator: it is awaited, not iterated.
            try:
                await cast("Awaitable[None]", inner_stream(request, context))
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await abort(context, exc, method)

        return with_streaming(
            handler, stream_response if inspect.isasyncgenfunction(inner_stream) else written_response
        )
