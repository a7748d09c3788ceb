"""Client channels: deadlines, retry on UNAVAILABLE through the service config,
keepalive, tracing; and deadlines derived from the caller's own."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, cast

import grpc
from opentelemetry import propagate

from ._auth import AuthSettings, BearerTokenInterceptor, TokenSource
from ._config import SettingsError, env_field
from ._errors import CallError, DeadlineExceeded, DomainError, Unavailable
from ._handlers import Context
from ._tls import TlsSettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = [
    "ChannelSettings",
    "Deadline",
    "Outgoing",
    "create_channel",
    "derive_timeout",
    "direct_channel",
    "downstream_errors",
    "health_status",
    "service_channels",
    "service_tokens",
    "tool_channel",
]

log = logging.getLogger("creditscore.runtime")


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
    #: How soon a channel tries again to connect to a downstream that went away
    #: (gRPC's defaults grow to 120 s: a restarted downstream would sit idle that long).
    reconnect_initial_backoff_ms: int = 100
    reconnect_max_backoff_ms: int = 2_000
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
            ("grpc.initial_reconnect_backoff_ms", self.reconnect_initial_backoff_ms),
            ("grpc.min_reconnect_backoff_ms", self.reconnect_initial_backoff_ms),
            ("grpc.max_reconnect_backoff_ms", self.reconnect_max_backoff_ms),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
        ]


ChannelSettings.default = ChannelSettings()


class _DefaultTimeout(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
):
    """Gives a call made without ``timeout=`` the channel's default deadline, so
    that no call can wait forever."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if details.timeout is not None:
            return details
        return grpc.aio.ClientCallDetails(
            details.method, self._seconds, details.metadata, details.credentials,
            details.wait_for_ready,
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


_KINDS = (
    (grpc.aio.UnaryUnaryClientInterceptor, "intercept_unary_unary"),
    (grpc.aio.UnaryStreamClientInterceptor, "intercept_unary_stream"),
    (grpc.aio.StreamUnaryClientInterceptor, "intercept_stream_unary"),
    (grpc.aio.StreamStreamClientInterceptor, "intercept_stream_stream"),
)


def _per_call_kind(interceptor: Any) -> list[Any]:
    """One interceptor object per kind of call it intercepts: a ``grpc.aio`` channel
    files an interceptor under the first of the four interfaces it implements only,
    so an object implementing all four would see unary-unary calls alone."""
    out = []
    for base, method in _KINDS:
        if isinstance(interceptor, base):
            bound = getattr(interceptor, method)
            out.append(type(f"_{type(interceptor).__name__}_{method}", (base,), {
                method: lambda self, continuation, details, request, _bound=bound: _bound(
                    continuation, details, request),
            })())
    return out


def create_channel(
    target: str,
    settings: ChannelSettings = ChannelSettings.default,
    *,
    tracer_provider: TracerProvider | None = None,
    tokens: TokenSource | None = None,
    tls: TlsSettings | None = None,
) -> grpc.aio.Channel:
    """A ``grpc.aio`` channel to ``target`` with retry and keepalive; a call made
    without ``timeout=`` gets ``settings.timeout_seconds``; with a tracer provider,
    calls carry the trace context to the server; with ``tokens``, every call carries
    ``authorization: Bearer <token>`` from that source. ``tls`` enabled: TLS only,
    the server's certificate checked against ``tls.ca_file`` and ours presented
    (mutual TLS); otherwise plaintext."""
    interceptors: list[Any] = _per_call_kind(_DefaultTimeout(settings.timeout_seconds))
    if tokens is not None:
        interceptors.extend(_per_call_kind(BearerTokenInterceptor(tokens)))
    if tracer_provider is not None:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors

        # opentelemetry-instrumentation-grpc leaves this factory unannotated.
        tracing = cast("Callable[..., list[grpc.aio.ClientInterceptor]]", aio_client_interceptors)
        interceptors.extend(tracing(tracer_provider=tracer_provider))
    return direct_channel(target, settings, tls=tls, interceptors=interceptors)


def direct_channel(
    target: str,
    settings: ChannelSettings = ChannelSettings.default,
    *,
    tls: TlsSettings | None = None,
    interceptors: Sequence[Any] = (),
) -> grpc.aio.Channel:
    """A channel as ``create_channel`` makes it (retry, keepalive, reconnect, TLS)
    but without client interceptors (unless given), for a hot path whose calls carry
    what the interceptors would add themselves (``Outgoing``: the token and the trace
    context) and always a timeout. In ``grpc.aio`` an intercepted call costs a task
    and a wrapper per interceptor; on the lookup's three batched calls that is a
    good part of the gateway's CPU."""
    if tls is not None and tls.enabled:
        return grpc.aio.secure_channel(
            target,
            tls.channel_credentials(),
            options=settings.channel_options() + tls.channel_options(),
            interceptors=list(interceptors) or None,
        )
    return grpc.aio.insecure_channel(
        target, options=settings.channel_options(), interceptors=list(interceptors) or None
    )


class Outgoing:
    """What ``create_channel``'s interceptors add to a call, for calls on a
    ``direct_channel``: ``authorization: Bearer <token>`` from ``tokens`` (when
    given) and the current trace context (W3C ``traceparent``), so the server's
    span joins the caller's trace. ``refused(exc)`` after a failed call makes the
    token source fetch a new token when the server refused this one."""

    def __init__(self, tokens: TokenSource | None) -> None:
        self._tokens = tokens

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        pairs = tuple(carrier.items())
        if self._tokens is None:
            return pairs
        return (("authorization", f"Bearer {await self._tokens.token()}"), *pairs)

    def refused(self, exc: grpc.aio.AioRpcError) -> None:
        if self._tokens is not None and exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            self._tokens.invalidate()


def derive_timeout(
    context: Context | None,
    default: float,
    *,
    reserve: float = 0.005,
    cap: float | None = None,
) -> float:
    """The timeout for a downstream call made while serving ``context``: what is
    left of the caller's deadline less ``reserve`` seconds for our own work and
    ``answer_reserve`` of it for our answer to reach the caller (as
    ``Deadline.from_context``), or ``default`` when the caller set no deadline;
    never more than ``cap``. Raises ``DeadlineExceeded`` when nothing is left."""
    remaining = context.time_remaining() if context is not None else None
    timeout = default if remaining is None else remaining - answer_reserve(remaining) - reserve
    if cap is not None:
        timeout = min(timeout, cap)
    if timeout <= 0:
        raise DeadlineExceeded(
            "the caller's deadline leaves no time for a downstream call",
            reason="DEADLINE_TOO_SHORT",
        )
    return timeout


#: The share of a caller's remaining deadline kept for our answer to reach it
#: (``Deadline.from_context``), and its bounds in seconds.
ANSWER_RESERVE_SHARE = 0.1
ANSWER_RESERVE_MIN_SECONDS = 0.05
ANSWER_RESERVE_MAX_SECONDS = 0.25


def answer_reserve(remaining: float) -> float:
    """Seconds of a caller's ``remaining`` deadline kept for our answer to travel
    back: a tenth of it, between 50 ms and 250 ms (a loaded event loop and the
    hop back take tens of milliseconds)."""
    return min(ANSWER_RESERVE_MAX_SECONDS, max(ANSWER_RESERVE_MIN_SECONDS, ANSWER_RESERVE_SHARE * remaining))


class Deadline:
    """One time budget shared by the downstream calls made while serving a call:
    the caller's deadline (or ``default`` seconds when it set none), each
    downstream call getting what is left less a small reserve."""

    def __init__(self, seconds: float) -> None:
        self._expires_at = time.monotonic() + seconds

    @classmethod
    def from_context(
        cls,
        context: Context | None,
        default: float,
        *,
        cap: float | None = None,
    ) -> Deadline:
        """The caller's remaining deadline less ``answer_reserve`` of it (the time
        our answer takes to reach the caller), ``default`` when it set none, never
        more than ``cap``. Without that reserve, work bounded by the caller's own
        deadline fails at the very moment the caller gives up, and the caller sees
        its own DEADLINE_EXCEEDED, without the reason and details of ours."""
        remaining = context.time_remaining() if context is not None else None
        seconds = default if remaining is None else remaining - answer_reserve(remaining)
        return cls(seconds if cap is None else min(seconds, cap))

    def remaining(self) -> float:
        return self._expires_at - time.monotonic()

    def timeout(self, reserve: float = 0.005) -> float:
        """Seconds for the next downstream call; ``DeadlineExceeded`` when none are left."""
        left = self.remaining() - reserve
        if left <= 0:
            raise DeadlineExceeded(
                "the deadline leaves no time for a downstream call", reason="DEADLINE_TOO_SHORT"
            )
        return left


#: Statuses that say the downstream itself failed (not that our request was wrong).
_DOWNSTREAM_FAILURES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


@contextlib.contextmanager
def downstream_errors(service: str) -> Iterator[None]:
    """Turns a failed downstream call into the domain error this service answers with:
    UNAVAILABLE -> ``Unavailable`` (reason DOWNSTREAM_UNAVAILABLE), DEADLINE_EXCEEDED ->
    ``DeadlineExceeded`` (DOWNSTREAM_DEADLINE_EXCEEDED), a failure of the downstream
    itself (INTERNAL, UNKNOWN: its bug or crash, not ours) -> ``Unavailable``
    (DOWNSTREAM_ERROR): our caller may try again later; anything else (the request
    refused: our bug or our configuration) -> ``DomainError`` (INTERNAL,
    DOWNSTREAM_ERROR). ``metadata`` names the service and its status and reason."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        err = CallError.from_rpc_error(exc)
        meta = {"service": service, "code": err.code.name}
        if err.reason:
            meta["downstream_reason"] = err.reason
        if err.code == grpc.StatusCode.UNAVAILABLE:
            raise Unavailable(
                f"{service} is unavailable", reason="DOWNSTREAM_UNAVAILABLE", metadata=meta
            ) from None
        if err.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise DeadlineExceeded(
                f"{service} did not answer in time",
                reason="DOWNSTREAM_DEADLINE_EXCEEDED",
                metadata=meta,
            ) from None
        if err.code in _DOWNSTREAM_FAILURES:
            raise Unavailable(
                f"{service} failed: {err.code.name}", reason="DOWNSTREAM_ERROR", metadata=meta
            ) from None
        raise DomainError(
            f"{service} failed: {err.code.name}", reason="DOWNSTREAM_ERROR", metadata=meta
        ) from None


def service_tokens(
    auth: AuthSettings,
    consent_addr: str,
    settings: ChannelSettings = ChannelSettings.default,
    *,
    tls: TlsSettings | None = None,
) -> tuple[TokenSource | None, grpc.aio.Channel | None]:
    """A service's own tokens, for the calls it makes to other services: a
    ``TokenSource`` that asks the consent service at ``consent_addr`` for a token
    (``IssueToken`` with ``SERVICE_CLIENT_ID`` / ``SERVICE_CLIENT_SECRET``) and the
    channel it asks on (the caller closes it). ``(None, None)`` when auth is
    disabled: calls then carry no token. ``SettingsError`` when auth is required and
    the credentials are not set."""
    auth.check()
    if not auth.required:
        return None, None
    if not auth.client_id or not auth.client_secret:
        raise SettingsError(
            "AUTH_MODE=required: set SERVICE_CLIENT_ID and SERVICE_CLIENT_SECRET, this "
            "service's credentials for its tokens (the consent service's IssueToken)"
        )
    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc

    channel = create_channel(consent_addr, settings, tls=tls)
    stub = consent_pb2_grpc.ConsentServiceStub(channel)
    request = consent_pb2.IssueTokenRequest(client_id=auth.client_id, client_secret=auth.client_secret)

    async def fetch() -> str:
        try:
            reply = await stub.IssueToken(request, timeout=settings.timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            err = CallError.from_rpc_error(exc)
            if err.code == grpc.StatusCode.UNAUTHENTICATED:
                log.error("the consent service refused this service's credentials (SERVICE_CLIENT_ID=%s)",
                          auth.client_id)
            raise Unavailable(
                "could not obtain this service's token from the consent service",
                reason="TOKEN_UNAVAILABLE",
                metadata={"service": "consent_service", "code": err.code.name},
            ) from None
        return reply.token

    return TokenSource(fetch), channel


def service_channels(
    auth: AuthSettings,
    consent_addr: str,
    addrs: Sequence[str],
    settings: ChannelSettings = ChannelSettings.default,
    *,
    tls: TlsSettings | None = None,
    tracer_provider: TracerProvider | None = None,
) -> tuple[list[grpc.aio.Channel], TokenSource | None, list[grpc.aio.Channel]]:
    """A service's channels to the services it calls: one ``create_channel`` per
    address of ``addrs``, in order, every call on them carrying this service's own
    tokens (``service_tokens``), with ``settings``, ``tls`` and tracing. Returns
    those channels, the token source (None when auth is disabled; for calls made
    on other channels) and every channel made, the one the tokens are fetched on
    included: the caller closes them when it stops."""
    tokens, token_channel = service_tokens(auth, consent_addr, settings, tls=tls)
    made = [
        create_channel(addr, settings, tracer_provider=tracer_provider, tokens=tokens, tls=tls) for addr in addrs
    ]
    return made, tokens, ([] if token_channel is None else [token_channel]) + made


def tool_channel(
    target: str,
    token: str | None = None,
    settings: ChannelSettings = ChannelSettings.default,
    *,
    environ: Mapping[str, str] | None = None,
) -> grpc.aio.Channel:
    """A channel for a command-line tool (``creditscore models``, ``lookup``, the
    trainer's export): every call carries ``token``, or ``CREDITSCORE_TOKEN`` from
    the environment when none is given (no token when neither is set); TLS per the
    ``TLS_*`` variables. ``creditscore token`` prints a token for client credentials."""
    import os

    from ._config import from_env

    env = os.environ if environ is None else environ
    token = token or env.get("CREDITSCORE_TOKEN", "")
    return create_channel(
        target, settings,
        tokens=TokenSource.static(token) if token else None,
        tls=from_env(TlsSettings, env),
    )


async def health_status(channel: grpc.aio.Channel, service: str = "", *, timeout: float) -> bool:
    """Whether ``grpc.health.v1.Health/Check`` on ``channel`` answers SERVING for
    ``service`` (``""``: the server as a whole; a service's full name: its readiness).
    Failed calls raise as any call does. (Called through the channel itself: the
    typeshed stub of ``HealthStub`` declares no methods.)"""
    from grpc_health.v1 import health_pb2

    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    reply: health_pb2.HealthCheckResponse = await check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return reply.status == health_pb2.HealthCheckResponse.SERVING
