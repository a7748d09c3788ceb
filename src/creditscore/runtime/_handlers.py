"""What the server interceptors wrap: a ``grpc.aio`` method handler's behaviour.

The grpc stubs type a handler's behaviours as the synchronous API's (a function of
the request and a ``grpc.ServicerContext`` returning the response or an
``Iterator``). Under ``grpc.aio`` they are coroutine functions for a single response
and, for a response stream, async generator functions or coroutine functions that
answer with ``context.write``. The aliases and helpers here say so once, for
``ErrorInterceptor``, ``AuthInterceptor`` and ``MetricsInterceptor``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

__all__ = [
    "Context",
    "Continuation",
    "Handler",
    "StreamBehaviour",
    "UnaryBehaviour",
    "streaming",
    "unary",
    "with_streaming",
    "with_unary",
]

# Strings: grpc's classes are not subscriptable at run time, only in the stubs.
#: A handler of any method (requests and responses are protobuf messages).
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
#: What an interceptor calls for the handler of the next one.
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
#: ``unary_unary`` / ``stream_unary`` under ``grpc.aio``: awaited for the response.
UnaryBehaviour: TypeAlias = "Callable[[Any, Context], Awaitable[Any]]"
#: ``unary_stream`` / ``stream_stream`` under ``grpc.aio``: an async generator of the
#: responses, or a coroutine that writes them (``context.write``) and returns None.
StreamBehaviour: TypeAlias = "Callable[[Any, Context], AsyncIterator[Any] | Awaitable[None]]"

def unary(handler: Handler) -> UnaryBehaviour | None:
    """The behaviour of a method with a single response; None for a response stream."""
    return cast("UnaryBehaviour | None", handler.unary_unary or handler.stream_unary)


def streaming(handler: Handler) -> StreamBehaviour:
    """The behaviour of a method with a response stream."""
    behaviour = handler.unary_stream or handler.stream_stream
    if behaviour is None:
        raise ValueError("the handler has no behaviour")
    return cast("StreamBehaviour", behaviour)


_SAME: Any = object()


def with_unary(handler: Handler, behaviour: UnaryBehaviour, *, request_deserializer: Any = _SAME) -> Handler:
    """``handler`` (a single response) with ``behaviour`` in place of its own (and
    ``request_deserializer``, when given)."""
    factory = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
    return factory(
        behaviour,
        request_deserializer=handler.request_deserializer if request_deserializer is _SAME else request_deserializer,
        response_serializer=handler.response_serializer,
    )


def with_streaming(
    handler: Handler, behaviour: StreamBehaviour, *, request_deserializer: Any = _SAME
) -> Handler:
    """``handler`` (a response stream) with ``behaviour`` in place of its own (and
    ``request_deserializer``, when given)."""
    factory = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
    return factory(
        behaviour,
        request_deserializer=handler.request_deserializer if request_deserializer is _SAME else request_deserializer,
        response_serializer=handler.response_serializer,
    )
