"""Hostile requests for every RPC of every service, built from the generated
descriptors, and the runner that sends them and counts what came back.

No service code and no process handling here: ``bench.hostile`` runs it against
the suite as processes, ``tests/e2e/test_hostile_e2e.py`` against the suite in
one process.

The generator (``Generator``), given a message descriptor and a ``random.Random``,
builds a message that is valid on the wire but hostile in content:

- strings: empty, huge (up to 1 MiB), unicode (combining marks, right-to-left
  overrides, zero-width characters, emoji, other scripts), NUL and control
  characters, injection-looking text, and ids that exist but belong to someone
  else (other subjects, partners, producers, model versions: ``Pools``);
- numbers: 0, -1, the type's minimum and maximum, NaN, ±inf, -0.0, the smallest
  subnormal; enums in range and out of it (proto3 enums are open: any int32);
- timestamps: year 1, year 9999, beyond either, negative seconds, nanos out of
  range (negative, 10^9, 2^31-1);
- repeated fields with 0, 1, a few or many (up to 300) items; nested messages
  recursively to a bounded depth; oneofs unset or set to one member, and (on the
  wire) several members of one oneof at once: two encodings of the request
  concatenated, which a parser merges (the last member wins);
- a share of requests are *plausible* (field by field from its name: a known
  subject id for ``subject_id``, a small ``page_size``, an enum value in range, a
  time near now) or taken from valid seeds (the simulator's records, as the demo
  sends them), then mutated in one to three places, so that requests get past
  the first validation and reach deeper code.

``every_rpc()`` enumerates every method of every service from each contract's
``DESCRIPTOR.services_by_name``: a new RPC is covered without a change here.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

from creditscore.runtime import CallError

__all__ = [
    "CONTRACTS",
    "Campaign",
    "Credentials",
    "Generator",
    "Identity",
    "Pools",
    "Rpc",
    "Tally",
    "every_rpc",
    "oversized_request",
    "recursive_types",
    "wide_request",
]

# -- the RPCs ---------------------------------------------------------------------


def _contracts() -> tuple[ModuleType, ...]:
    from creditscore.consent.v1 import consent_pb2
    from creditscore.feature.v1 import feature_pb2
    from creditscore.gateway.v1 import gateway_pb2, subject_pb2
    from creditscore.ingest.v1 import ingest_pb2
    from creditscore.scoring.v1 import scoring_pb2

    return consent_pb2, ingest_pb2, feature_pb2, scoring_pb2, gateway_pb2, subject_pb2


CONTRACTS = _contracts()

#: The process that serves each contract package.
HOSTED_BY = {
    "creditscore.consent.v1": "consent_service",
    "creditscore.ingest.v1": "ingest_service",
    "creditscore.feature.v1": "feature_service",
    "creditscore.scoring.v1": "scoring_service",
    "creditscore.gateway.v1": "gateway",
}


@dataclass(frozen=True)
class Rpc:
    """One method of one service, and the process (package) that serves it."""

    package: str
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def short(self) -> str:
        return f"{self.method.containing_service.name}/{self.method.name}"

    @property
    def client_streaming(self) -> bool:
        return bool(self.method.client_streaming)

    @property
    def server_streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def input(self) -> Descriptor:
        return self.method.input_type

    @property
    def output(self) -> type[Message]:
        return message_class(self.method.output_type)


def every_rpc(contracts: Iterable[ModuleType] = CONTRACTS) -> list[Rpc]:
    """Every method of every service the contracts declare."""
    out = []
    for module in contracts:
        for service in module.DESCRIPTOR.services_by_name.values():
            package = HOSTED_BY[service.file.package]
            out.extend(Rpc(package, method) for method in service.methods)
    return out


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def recursive_types(rpcs: Iterable[Rpc]) -> list[str]:
    """The message types, reachable from any RPC's request, that contain
    themselves (directly or through others): where deep nesting is possible."""
    found: set[str] = set()

    def walk(d: Descriptor, path: tuple[str, ...]) -> None:
        if d.full_name in path:
            found.add(d.full_name)
            return
        for f in d.fields:
            if f.message_type is not None:
                walk(f.message_type, (*path, d.full_name))

    for rpc in rpcs:
        walk(rpc.input, ())
    return sorted(found)


# -- values -----------------------------------------------------------------------

_UNICODE = (
    "é", "e\u0301\u0301\u0301", "\u202eevil", "\u200b", "\ufeff", "💳🏦", "Ω≈ç√∫", "日本語のテキスト",
    "مرحبا", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\U0010ffff", "ǅ", "ﬃ", "İ",
)
_NASTY = (
    "", " ", "\x00", "a\x00b", "\x01\x02\x7f", "\n", "\r\n", "\t", "../../etc/passwd", "' OR 1=1 --",
    "'; DROP TABLE subjects; --", "%s%s%n", "${jndi:ldap://x}", "{}", "[]", "null", "None", "-1", "0",
    "9" * 40, "NaN", "Infinity", "1e309", "USD", "usd", "XXX", "US", "USDD", "2026-13-45T25:61:61Z",
    "eyJhbGciOiJub25lIn0.e30.", "Bearer x", "*", "%", "_", "\\", "\"", "<script>", "a" * 256,
)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (0.0, -0.0, 1.0, -1.0, 0.5, math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 3.4e38, 1e-45, 2.0**53)
_YEAR_1 = -62135596800
_YEAR_9999_END = 253402300799
_SECONDS = (0, -1, 1, _YEAR_1, _YEAR_1 - 1, _YEAR_9999_END, _YEAR_9999_END + 1, -(2**62), 2**62, 2**63 - 1,
            -(2**63), 10**10, -(10**10))
_NANOS = (0, 1, 999_999_999, -1, 10**9, 2**31 - 1, -(2**31))


@dataclass
class Pools:
    """Ids that exist in the running suite, so that hostile requests name real
    rows: other subjects, partners, producers, model versions, records."""

    subjects: list[str] = field(default_factory=list)
    partners: list[str] = field(default_factory=list)
    producers: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=lambda: ["1.0.0", "2.0.0"])
    record_ids: list[str] = field(default_factory=list)
    transactions: list[str] = field(default_factory=list)

    def for_field(self, name: str) -> list[str]:
        if "subject" in name:
            return self.subjects
        if "partner" in name or name == "client_id":
            return [*self.partners, *self.producers, *self.subjects]
        if "producer" in name:
            return self.producers
        if "version" in name:
            return self.models
        if "record_id" in name:
            return self.record_ids
        if "transaction" in name:
            return self.transactions
        return []


@dataclass
class Generator:
    """Hostile and plausible messages for descriptors, from ``rng``."""

    rng: random.Random
    pools: Pools = field(default_factory=Pools)
    max_depth: int = 5
    #: The longest string or bytes value made (a few are that long; most are short).
    huge: int = 1 << 20
    #: The most items a repeated field gets (``wide_request`` makes the 10k case).
    many: int = 300
    now: float = field(default_factory=time.time)
    #: Characters of long strings left for the request being made: a request holds
    #: at most ``per_request`` of them (about 4 MiB), so that making one never
    #: stalls the sending loop for seconds (which would show as other calls late).
    per_request: int = 4 << 20
    budget: int = 4 << 20

    # hostile -------------------------------------------------------------------

    def hostile(self, d: Descriptor, depth: int = 0) -> Message:
        """Every field hostile (each set with a probability, oneofs unset or one member)."""
        msg = message_class(d)()
        if d.full_name == "google.protobuf.Timestamp":
            self._timestamp(msg, hostile=True)
            return msg
        chosen_oneof = {o.name: self.rng.choice([None, *o.fields]) for o in d.oneofs}
        for f in d.fields:
            if f.containing_oneof is not None and chosen_oneof[f.containing_oneof.name] is not f:
                continue
            if f.containing_oneof is None and self.rng.random() < 0.3:
                continue  # left unset
            self._fill(msg, f, depth, hostile=True)
        return msg

    def _fill(self, msg: Message, f: FieldDescriptor, depth: int, *, hostile: bool) -> None:
        if f.is_repeated:
            n = self._count(hostile)
            container = getattr(msg, f.name)
            if f.message_type is not None:
                if depth >= self.max_depth:
                    return
                for _ in range(n):
                    item = self.hostile(f.message_type, depth + 1) if hostile else self.plausible(
                        f.message_type, depth + 1)
                    container.add().CopyFrom(item)
            else:
                container.extend(self._scalar(f, hostile) for _ in range(n))
            return
        if f.message_type is not None:
            if depth >= self.max_depth:
                return
            sub = self.hostile(f.message_type, depth + 1) if hostile else self.plausible(f.message_type, depth + 1)
            getattr(msg, f.name).CopyFrom(sub)
            return
        setattr(msg, f.name, self._scalar(f, hostile))

    def _count(self, hostile: bool) -> int:
        r = self.rng.random()
        if r < 0.25:
            return 0
        if r < 0.6:
            return 1
        if r < 0.9 or not hostile:
            return self.rng.randint(2, 6)
        return self.rng.randint(7, self.many)

    def _scalar(self, f: FieldDescriptor, hostile: bool) -> Any:
        t = f.type
        if t == FieldDescriptor.TYPE_STRING:
            return self._string(f.name) if hostile else self._plausible_string(f.name)
        if t == FieldDescriptor.TYPE_BYTES:
            return self.rng.randbytes(self.rng.choice([0, 1, 16, 1024]))
        if t == FieldDescriptor.TYPE_BOOL:
            return self.rng.random() < 0.5
        if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            value = self.rng.choice(_FLOATS) if hostile else self.rng.uniform(0, 1)
            if t == FieldDescriptor.TYPE_FLOAT and math.isfinite(value) and abs(value) > 3.4e38:
                value = math.copysign(math.inf, value)
            return value
        if t == FieldDescriptor.TYPE_ENUM:
            numbers = [v.number for v in f.enum_type.values]
            if hostile and self.rng.random() < 0.4:
                return self.rng.choice([-1, max(numbers) + 1, 2**31 - 1, -(2**31), 99])
            if not hostile:
                numbers = [n for n in numbers if n != 0] or numbers
            return self.rng.choice(numbers)
        low, high = _INT_RANGES[t]
        if not hostile:
            return self._plausible_int(f.name, high)
        return self.rng.choice([0, -1 if low < 0 else 0, 1, low, high, low + 1 if low else 2, high - 1, 1000,
                                10**6, self.rng.randint(low, high), -(10**9) if low < 0 else 10**9])

    def _string(self, name: str) -> str:
        r = self.rng.random()
        pool = self.pools.for_field(name)
        if r < 0.2 and pool:
            return self.rng.choice(pool)
        if r < 0.45:
            return self.rng.choice(_NASTY)
        if r < 0.65:
            return "".join(self.rng.choice(_UNICODE) for _ in range(self.rng.randint(1, 8)))
        if r < 0.75 and pool:  # a real id, altered
            real = self.rng.choice(pool)
            return self.rng.choice([real.upper(), f" {real}", f"{real}\x00", real[:-1], real + real, f"{real}%"])
        if r < 0.8:
            size = min(self.rng.choice([1024, 65536, 65536, self.huge]), max(self.budget, 16))
            self.budget -= size
            return self.rng.choice(["a", "é", "\x00", "7"]) * size
        return "".join(chr(self.rng.randint(1, 0xD7FF)) for _ in range(self.rng.randint(1, 40)))

    def _timestamp(self, msg: Any, *, hostile: bool) -> None:
        if hostile and self.rng.random() < 0.7:
            msg.seconds = self.rng.choice(_SECONDS)
            msg.nanos = self.rng.choice(_NANOS)
        else:
            msg.seconds = int(self.now) + self.rng.randint(-3 * 365 * 86400, 86400)
            msg.nanos = self.rng.randint(0, 999_999_999)

    # plausible -----------------------------------------------------------------

    def plausible(self, d: Descriptor, depth: int = 0) -> Message:
        """A message that looks right field by field (known ids, small pages,
        enums in range, times near now), one oneof member set."""
        msg = message_class(d)()
        if d.full_name == "google.protobuf.Timestamp":
            self._timestamp(msg, hostile=False)
            return msg
        chosen_oneof = {o.name: self.rng.choice(o.fields) for o in d.oneofs}
        for f in d.fields:
            if f.containing_oneof is not None and chosen_oneof[f.containing_oneof.name] is not f:
                continue
            if f.name in ("page_token", "after_sequence"):
                continue
            self._fill(msg, f, depth, hostile=False)
        return msg

    def _plausible_string(self, name: str) -> str:
        pool = self.pools.for_field(name)
        if pool:
            return self.rng.choice(pool)
        if name == "currency_code":
            return self.rng.choice(["USD", "EUR", "BRL"])
        if name == "request_id" or name.endswith("_id"):
            return f"hostile-{self.rng.getrandbits(48):012x}"
        return self.rng.choice(["x", "note", "Demo Partner", "ok"])

    def _plausible_int(self, name: str, high: int) -> int:
        if name == "page_size":
            return self.rng.choice([0, 1, 10, 100])
        if name == "stars":
            return self.rng.randint(1, 5)
        if name in ("threshold", "score", "min_scores"):
            return self.rng.randint(350, 950)
        if name == "revision":
            return self.rng.randint(0, 3)
        return self.rng.randint(0, min(high, 100_000))

    # mutation ------------------------------------------------------------------

    def mutate(self, msg: Message, times: int | None = None) -> Message:
        """A copy of ``msg`` with one to three fields (at any depth) made hostile or cleared."""
        out = type(msg)()
        out.CopyFrom(msg)
        for _ in range(times or self.rng.randint(1, 3)):
            self._mutate_one(out, 0)
        return out

    def _mutate_one(self, msg: Message, depth: int) -> None:
        d = msg.DESCRIPTOR
        if not d.fields:
            return
        f = self.rng.choice(d.fields)
        is_message = f.message_type is not None
        if f.is_repeated:
            container: Any = getattr(msg, f.name)
            if is_message and len(container) and self.rng.random() < 0.6 and depth < self.max_depth:
                self._mutate_one(container[self.rng.randrange(len(container))], depth + 1)
            elif self.rng.random() < 0.3:
                del container[:]
            elif is_message and len(container) and self.rng.random() < 0.5:
                extra = type(container[0])()
                extra.CopyFrom(container[self.rng.randrange(len(container))])
                container.add().CopyFrom(extra)  # a duplicate item
            else:
                self._fill(msg, f, depth, hostile=True)
            return
        if is_message:
            if msg.HasField(f.name) and self.rng.random() < 0.6 and depth < self.max_depth:
                self._mutate_one(getattr(msg, f.name), depth + 1)
            elif self.rng.random() < 0.4:
                msg.ClearField(f.name)
            else:
                getattr(msg, f.name).CopyFrom(self.hostile(f.message_type, depth + 1))
            return
        if self.rng.random() < 0.2:
            msg.ClearField(f.name)
        else:
            setattr(msg, f.name, self._scalar(f, hostile=True))

    # a request -----------------------------------------------------------------

    def request(self, d: Descriptor, seeds: Sequence[Message] = ()) -> bytes:
        """The wire bytes of one request of type ``d``: hostile (35%), plausible
        and mutated (30%), a seed mutated (25%, where there are seeds; else
        plausible), or two of these concatenated (10%: several members of a
        oneof, repeated fields merged)."""
        self.budget = self.per_request
        return self._request(d, seeds)

    def _request(self, d: Descriptor, seeds: Sequence[Message]) -> bytes:
        r = self.rng.random()
        if r < 0.1:
            return self._request(d, seeds) + self._request(d, seeds)
        if r < 0.45:
            return self.hostile(d).SerializeToString()
        if r < 0.75 or not seeds:
            base = self.plausible(d)
            return (self.mutate(base) if self.rng.random() < 0.8 else base).SerializeToString()
        return self.mutate(self.rng.choice(seeds)).SerializeToString()


def oversized_request(d: Descriptor, size: int) -> bytes | None:
    """A request of type ``d`` over ``size`` bytes on the wire (a string field
    filled), or None when the type has no string or bytes field at any depth."""
    msg = message_class(d)()
    for f in d.fields:
        if not f.is_repeated and f.type == FieldDescriptor.TYPE_STRING:
            setattr(msg, f.name, "a" * (size + 1024))
            return msg.SerializeToString()
        if f.is_repeated and f.type == FieldDescriptor.TYPE_STRING:
            getattr(msg, f.name).append("a" * (size + 1024))
            return msg.SerializeToString()
    for f in d.fields:
        if f.message_type is not None and f.message_type.full_name != "google.protobuf.Timestamp":
            inner = oversized_request(f.message_type, size)
            if inner is not None:
                sub = message_class(f.message_type).FromString(inner)
                if f.is_repeated:
                    getattr(msg, f.name).add().CopyFrom(sub)
                else:
                    getattr(msg, f.name).CopyFrom(sub)
                return msg.SerializeToString()
    return None


def wide_request(gen: Generator, d: Descriptor, items: int) -> list[tuple[str, bytes]]:
    """For each repeated field of ``d`` (top level): a plausible request with
    that field holding ``items`` items: ``(field name, wire bytes)``."""
    out = []
    for f in d.fields:
        if not f.is_repeated:
            continue
        msg = gen.plausible(d)
        container: Any = getattr(msg, f.name)
        del container[:]
        if f.message_type is not None:
            one = gen.plausible(f.message_type, 1)
            for _ in range(items):
                container.add().CopyFrom(one)
        else:
            container.extend(gen._scalar(f, hostile=False) for _ in range(items))
        out.append((f.name, msg.SerializeToString()))
    return out


# -- credentials --------------------------------------------------------------------

#: Token kinds, plus two pseudo-kinds: no token, and a token that is not one.
KIND_NONE = "none"
KIND_FORGED = "forged"
_FORGED = (("authorization", "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.AAAA"),)


@dataclass
class Identity:
    """One caller: its kind, name and the metadata its calls carry."""

    kind: str
    name: str
    metadata: tuple[tuple[str, str], ...]


Renew = Callable[[Identity], Awaitable[Identity | None]]


@dataclass
class Credentials:
    """Callers of every kind (``service``, ``producer``, ``partner``,
    ``subject``). ``renew`` gets an identity a fresh token (or a replacement)
    when a call finds its token revoked: hostile requests revoke tokens,
    rotate secrets and close accounts, and the run goes on with every kind."""

    by_kind: dict[str, list[Identity]]
    renew: Renew | None = None
    renewed: int = 0
    renew_failures: list[str] = field(default_factory=list)
    #: INTERNAL or UNKNOWN answers to the renewals themselves.
    renew_errors: list[str] = field(default_factory=list)
    _renewing: set[str] = field(default_factory=set)

    def pick(self, rng: random.Random, kind: str) -> Identity:
        if kind == KIND_NONE:
            return Identity(KIND_NONE, "", ())
        if kind == KIND_FORGED:
            return Identity(KIND_FORGED, "", _FORGED)
        return rng.choice(self.by_kind[kind])

    @property
    def kinds(self) -> list[str]:
        return [*sorted(self.by_kind), KIND_NONE, KIND_FORGED]

    async def revoked(self, identity: Identity) -> None:
        pool = self.by_kind.get(identity.kind)
        if self.renew is None or pool is None or identity.name in self._renewing or identity not in pool:
            return
        self._renewing.add(identity.name)
        try:
            fresh = await self.renew(identity)
        except grpc.aio.AioRpcError as exc:
            # The suite could not renew it now (a busy store): the caller stays
            # as it is, and is renewed at its next refusal.
            self.renew_failures.append(f"{identity.kind} {identity.name}: {exc.code().name}")
            if exc.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                self.renew_errors.append(exc.code().name)  # the suite's own calls count too
            return
        finally:
            self._renewing.discard(identity.name)
        if identity in pool:
            pool.remove(identity)
            if fresh is not None:
                pool.append(fresh)
                self.renewed += 1


# -- sending and counting -------------------------------------------------------------


def _identity(value: bytes) -> bytes:
    return value


@dataclass
class Outcome:
    rpc: str
    kind: str
    code: str
    seconds: float
    reason: str = ""
    note: str = ""


@dataclass
class Tally:
    """What came back: status codes per RPC, the failures (INTERNAL, UNKNOWN,
    hangs) with what was sent, and the slowest call."""

    codes: dict[str, Counter[str]] = field(default_factory=dict)
    by_kind: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: list[Outcome] = field(default_factory=list)
    hangs: int = 0
    sent: int = 0
    slowest: float = 0.0
    #: The longest the sending process's event loop was late (a busy client makes
    #: every call in flight look slower).
    loop_lag: float = 0.0
    past_auth: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome) -> None:
        self.sent += 1
        self.codes.setdefault(outcome.rpc, Counter())[outcome.code] += 1
        self.by_kind[(outcome.kind, outcome.code)] += 1
        self.slowest = max(self.slowest, outcome.seconds)
        if outcome.code not in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            self.past_auth[outcome.rpc] += 1
        if outcome.code in ("INTERNAL", "UNKNOWN", "HANG"):
            self.failures.append(outcome)
        if outcome.code == "HANG":
            self.hangs += 1

    def count(self, code: str) -> int:
        return sum(c[code] for c in self.codes.values())

    @property
    def total(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.codes.values():
            out.update(c)
        return out


@dataclass
class Campaign:
    """Sends generated requests to the suite: ``channels`` by package (each
    allowed to send beyond the servers' limit), the right token kinds per
    method (``policy``: full method name to kinds; missing or empty: public)."""

    channels: dict[str, grpc.aio.Channel]
    credentials: Credentials
    policy: dict[str, frozenset[str]]
    deadline: float = 2.0
    margin: float = 3.0
    #: Share of calls made with a token of the right kind (the rest: other kinds,
    #: no token, a forged one).
    right_kind: float = 0.75
    seeds: dict[str, list[Message]] = field(default_factory=dict)
    stream_message_limit: int = 8 * 1024 * 1024 - 1024

    def right_identity(self, rng: random.Random, rpc: Rpc) -> Identity:
        """A caller of a kind the method's policy allows."""
        allowed = sorted(self.policy.get(rpc.path, frozenset()) - {"*"}) or [KIND_NONE]
        return self.credentials.pick(rng, rng.choice(allowed))

    def kind_for(self, rng: random.Random, rpc: Rpc) -> str:
        allowed = sorted(self.policy.get(rpc.path, frozenset()) - {"*"}) or [KIND_NONE]
        if rng.random() < self.right_kind:
            return rng.choice(allowed)
        return rng.choice([k for k in self.credentials.kinds if k not in allowed] or allowed)

    async def call(self, rpc: Rpc, payload: bytes | list[bytes], identity: Identity,
                   deadline: float | None = None) -> Outcome:
        """One call with ``payload`` (a list: the messages of a client stream),
        its deadline, and a watch for a hang: no answer by the deadline plus the
        margin is recorded as ``HANG``."""
        channel = self.channels[rpc.package]
        timeout = self.deadline if deadline is None else deadline
        output = rpc.output
        start = time.perf_counter()

        async def run() -> Message | None:
            md = identity.metadata or None
            if rpc.client_streaming:
                items = payload if isinstance(payload, list) else [payload]

                async def stream() -> AsyncIterator[bytes]:
                    for item in items:
                        yield item

                call = channel.stream_unary(rpc.path, request_serializer=_identity,
                                            response_deserializer=output.FromString)
                result: Message = await call(stream(), timeout=timeout, metadata=md)
                return result
            one = payload if isinstance(payload, bytes) else b"".join(payload)
            if rpc.server_streaming:
                scall = channel.unary_stream(rpc.path, request_serializer=_identity,
                                             response_deserializer=output.FromString)
                last = None
                async for item in scall(one, timeout=timeout, metadata=md):
                    last = item
                return last
            ucall = channel.unary_unary(rpc.path, request_serializer=_identity,
                                        response_deserializer=output.FromString)
            answer: Message = await ucall(one, timeout=timeout, metadata=md)
            return answer

        try:
            await asyncio.wait_for(run(), timeout + self.margin)
            code, reason = "OK", ""
        except TimeoutError:
            code, reason = "HANG", ""
        except grpc.aio.AioRpcError as exc:
            error = CallError.from_rpc_error(exc)
            code, reason = exc.code().name, error.reason or f"({(exc.details() or '')[:100]})"
        seconds = time.perf_counter() - start
        if code != "HANG" and seconds > timeout + self.margin:
            code = "HANG"
        outcome = Outcome(rpc.short, identity.kind, code, seconds, reason)
        if reason in ("TOKEN_REVOKED", "TOKEN_EXPIRED") and identity.kind in self.credentials.by_kind:
            await self.credentials.revoked(identity)
        return outcome

    def payload(self, gen: Generator, rpc: Rpc) -> bytes | list[bytes]:
        """A request, or for a client stream 0 to 6 of them. A streamed message
        stays under ``stream_message_limit``: one past the servers' limit in the
        middle of a stream ends it in grpc's core, whose client then reports
        INTERNAL ("Internal error from Core") about half the time, a bare
        ``grpc.aio`` server as well (the probes send an oversized stream message
        alone)."""
        seeds = self.seeds.get(rpc.path, ())
        if rpc.client_streaming:
            items = []
            for _ in range(gen.rng.choice([0, 1, 1, 2, 3, 6])):
                item = gen.request(rpc.input, seeds)
                while len(item) >= self.stream_message_limit:
                    item = gen.request(rpc.input, seeds)
                items.append(item)
            return items
        return gen.request(rpc.input, seeds)

    async def run(self, rpcs: Sequence[Rpc], n: int, gen: Generator, tally: Tally, *, in_flight: int = 8,
                  progress: Callable[[int], None] | None = None, alive: Callable[[], None] | None = None) -> None:
        """``n`` generated requests, spread evenly over ``rpcs`` (round robin over
        a shuffled order), ``in_flight`` at a time."""
        order = list(rpcs)
        gen.rng.shuffle(order)
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < n:
                i = next_index
                next_index += 1
                rpc = order[i % len(order)]
                identity = self.credentials.pick(gen.rng, self.kind_for(gen.rng, rpc))
                payload = self.payload(gen, rpc)
                outcome = await self.call(rpc, payload, identity)
                outcome.note = _describe(payload)
                tally.add(outcome)
                if progress is not None and tally.sent % 1000 == 0:
                    progress(tally.sent)
                if alive is not None and tally.sent % 200 == 0:
                    alive()

        async def watch() -> None:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0.05)
                tally.loop_lag = max(tally.loop_lag, time.perf_counter() - before - 0.05)

        watchdog = asyncio.create_task(watch())
        try:
            await asyncio.gather(*(worker() for _ in range(in_flight)))
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog


def _describe(payload: bytes | list[bytes]) -> str:
    items = payload if isinstance(payload, list) else [payload]
    size = sum(len(p) for p in items)
    head = b"".join(items)[:120]
    return f"{len(items)} message(s), {size} bytes, starting {head!r}"


# -- a suite to send them to ------------------------------------------------------------


@dataclass
class World:
    """What a run needs from a running suite: callers of every kind, the ids that
    exist, valid requests to mutate, and the right token kinds per method."""

    credentials: Credentials
    pools: Pools
    seeds: dict[str, list[Message]]
    policy: dict[str, frozenset[str]]
    subjects: int
    records: int


def policy_of_every_service() -> dict[str, frozenset[str]]:
    """Every server's own policy (who may call which method), as the servers
    enforce it: the right kind of token per method comes from there."""
    import consent_service.server
    import feature_service.server
    import gateway.server
    import ingest_service.server
    import scoring_service.server

    out: dict[str, frozenset[str]] = {}
    for module in (consent_service.server, ingest_service.server, feature_service.server,
                   scoring_service.server, gateway.server):
        out.update({method: frozenset(kinds) for method, kinds in module.POLICY.items()})
    return out


async def prepare_world(suite: Any, n_subjects: int, seed: int, *, n_subject_tokens: int = 12) -> World:
    """Loads a simulated population into ``suite`` (a ``creditscore.cli.run.Suite``,
    authentication required) as the demo does, registers the demo partner, and
    gets tokens of every kind: the operator's (a service token), each producer's,
    the partner's and ``n_subject_tokens`` subjects' own."""
    from creditscore.cli.run import (
        PRODUCER_SOURCES,
        bearer,
        issue_token,
        load_population,
        register_partner,
        wait_features,
    )
    from creditscore.common.v1 import common_pb2
    from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
    from creditscore.ingest.v1 import ingest_pb2

    population, report = await load_population(suite, n_subjects, seed, out=lambda *_: None)
    await wait_features(suite, population, report.accepted_for_features, timeout=120)
    ids = [s.subject_id for s in population.subjects]
    partner = await register_partner(suite, ids, out=lambda *_: None)
    consent_addr, tls = suite.addr("consent_service"), suite.tls
    operator_secret = suite.auth.secrets["operator"]
    secrets = {**report.subject_secrets, **report.producer_secrets, partner.partner_id: partner.secret,
               "operator": operator_secret}

    async def token_for(name: str) -> str:
        return await issue_token(consent_addr, name, secrets[name], tls=tls)

    by_kind: dict[str, list[Identity]] = {
        "service": [Identity("service", "operator", bearer(await token_for("operator")))],
        "producer": [Identity("producer", p, bearer(await token_for(p))) for p in PRODUCER_SOURCES],
        "partner": [Identity("partner", partner.partner_id, bearer(partner.token))],
        "subject": [Identity("subject", sid, bearer(await token_for(sid)))
                    for sid in ids[:n_subject_tokens] if sid in secrets],
    }
    pools = Pools(subjects=list(ids), partners=[partner.partner_id], producers=list(PRODUCER_SOURCES),
                  record_ids=[r.record_id for r in population.records[:200]])
    fresh = 0

    async def renew(identity: Identity) -> Identity | None:
        """A new token for the same caller, or (closed, ended) a new caller of its kind."""
        nonlocal fresh
        try:
            return Identity(identity.kind, identity.name, bearer(await token_for(identity.name)))
        except grpc.aio.AioRpcError:
            pass
        fresh += 1
        name = f"hostile-{identity.kind}-{fresh}"
        async with suite.channel("consent_service", await token_for("operator")) as channel:
            consent = consent_pb2_grpc.ConsentServiceStub(channel)
            if identity.kind == "subject":
                enrolled = await consent.EnrollSubject(consent_pb2.EnrollSubjectRequest(
                    request_id=f"{name}-enroll", subject_id=name, consents=[consent_pb2.InitialConsent(
                        source=common_pb2.DATA_SOURCE_PAYMENTS, purpose=common_pb2.PURPOSE_CREDIT_SCORING)]),
                    timeout=30)
                secrets[name] = enrolled.subject_secret
                pools.subjects.append(name)
            elif identity.kind == "partner":
                partner_reply = await consent.RegisterPartner(consent_pb2.RegisterPartnerRequest(
                    request_id=f"{name}-register", partner_id=name, display_name=name), timeout=30)
                secrets[name] = partner_reply.credentials.client_secret
                pools.partners.append(name)
            elif identity.kind == "producer":
                producer_reply = await consent.RegisterProducer(consent_pb2.RegisterProducerRequest(
                    request_id=f"{name}-register", producer_id=name, display_name=name,
                    sources=list(common_pb2.DataSource.values())[1:]), timeout=30)
                secrets[name] = producer_reply.credentials.client_secret
                pools.producers.append(name)
            else:
                return None
        return Identity(identity.kind, name, bearer(await token_for(name)))

    by_producer = population.by_producer()
    records = [r for rs in by_producer.values() for r in rs]
    ingest_seeds: list[Message] = [
        ingest_pb2.IngestRecordsRequest(request_id=f"seed-{producer}-{i}", producer_id=producer,
                                        records=rs[i:i + 5])
        for producer, rs in by_producer.items() for i in range(0, min(len(rs), 100), 5)]
    stream_seeds: list[Message] = [
        ingest_pb2.IngestRecordStreamRequest(request_id=f"seed-stream-{i}", producer_id=r_producer,
                                             records=[r])
        for i, (r_producer, r) in enumerate((p, r) for p, rs in by_producer.items() for r in rs[:20])]
    seeds: dict[str, list[Message]] = {
        "/creditscore.ingest.v1.IngestService/IngestRecords": ingest_seeds,
        "/creditscore.ingest.v1.IngestService/IngestRecordStream": stream_seeds,
    }
    return World(Credentials(by_kind, renew), pools, seeds, policy_of_every_service(), len(ids), len(records))
