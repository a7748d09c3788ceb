"""Client channels: deadlines, retry on UNAVAILABLE through the service config,
keepalive, tracing; and deadlines derived from the caller's own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
from opentelemetry.sdk.trace import TracerProvider

from ._config import env_field
from ._errors import DeadlineExceeded

__all__ = ["ChannelSettings", "create_channel", "derive_timeout"]


@dataclass(frozen=True)
class ChannelSettings:
    """How a service talks to another. ``ChannelSettings.default`` is the usual."""

    timeout_seconds: float = env_field(
        "GRPC_CLIENT_TIMEOUT_SECONDS", 5.0, help="deadline of a call that has no caller deadline"
    )
    retry_max_attempts: int = env_field("GRPC_CLIENT_RETRY_MAX_ATTEMPTS", 4)
    retry_initial_backoff_seconds: float = 0.05
    retry_max_backoff_seconds: float = 1.0
    keepalive_time_ms: int = 30_000
    keepalive_timeout_ms: int = 10_000
    max_message_bytes: int = 8 * 1024 * 1024

    default: ClassVar[ChannelSettings]

    def service_config(self) -> str:
        """Retry on UNAVAILABLE only. Every RPC of this suite is a read or takes
        a ``request_id`` and is idempotent on it, so a retry never applies twice."""
        return json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{}],
                        "retryPolicy": {
                            "maxAttempts": self.retry_max_attempts,
                            "initialBackoff": f"{self.retry_initial_backoff_seconds}s",
                            "maxBackoff": f"{self.retry_max_backoff_seconds}s",
                            "backoffMultiplier": 2,
                            "retryableStatusCodes": ["UNAVAILABLE"],
                        },
                    }
                ]
            }
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", self.service_config()),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
        ]


ChannelSettings.default = ChannelSettings()


def create_channel(
    target: str,
    settings: ChannelSettings = ChannelSettings.default,
    *,
    tracer_provider: TracerProvider | None = None,
) -> grpc.aio.Channel:
    """An insecure ``grpc.aio`` channel to ``target`` with retry and keepalive; with
    a tracer provider, calls carry the trace context to the server."""
    interceptors = []
    if tracer_provider is not None:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        interceptors = aio_client_interceptors(tracer_provider=tracer_provider)
    return grpc.aio.insecure_channel(
        target, options=settings.channel_options(), interceptors=interceptors
    )


def derive_timeout(
    context: grpc.aio.ServicerContext | None,
    default: float,
    *,
    reserve: float = 0.005,
    cap: float | None = None,
) -> float:
    """The timeout for a downstream call made while serving ``context``: what is
    left of the caller's deadline less ``reserve`` seconds for our own work, or
    ``default`` when the caller set no deadline; never more than ``cap``.
    Raises ``DeadlineExceeded`` when nothing is left."""
    remaining = context.time_remaining() if context is not None else None
    timeout = default if remaining is None else remaining - reserve
    if cap is not None:
        timeout = min(timeout, cap)
    if timeout <= 0:
        raise DeadlineExceeded(
            "the caller's deadline leaves no time for a downstream call",
            reason="DEADLINE_TOO_SHORT",
        )
    return timeout
