"""Persistence of the consent service (SQLAlchemy Core, SQLite or PostgreSQL): one
database, its tables defined once in ``tables``, read and written by one
repository per table family, which share the unit of work of each request (the
connection of one transaction, passed through):

- ``RequestsRepo`` (``requests``): the unit of work of every mutation but the
  access log's and a purge's (``RequestsRepo.idempotent``): in one transaction it
  claims the ``request_id``, applies the change, stores the serialized response;
- ``SubjectsRepo`` (``subjects``): enrollment, secrets, generations, and the
  subject row every write about a subject locks first;
- ``ConsentsRepo``, ``ClientsRepo``, ``AuthorizationsRepo``: consents, registered
  partners and producers, authorizations;
- ``AccessLogRepo`` (``access_log``): the lookups, idempotent on (partner,
  transaction id); ``record_accesses``, the lookup's one question, is one
  transaction with a fixed number of statements whatever the batch's size;
- ``PurgesRepo`` (``purge_jobs``, ``purge_steps``): deletion receipts and the
  worker's steps; ``RevocationsRepo``: the revocation log, whose counter row
  orders its writers, and services' generations.

``ConsentStore`` builds them on one engine (``store.subjects``, ``store.consents``,
...) and keeps the service's one interface to them, forwarding to the family
concerned; what spans every family is its own: ``purge_subject`` (one
transaction over all of them) and ``subject_holdings`` (an export's read). The
rules themselves are in ``consents``, ``authorizations``, ``registry``,
``revocation`` and ``purge``; the repositories only read and write what they
decide.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from creditscore.runtime import REVOKE_SUBJECT, GroupCommit, Transactions, begin_write, create_schema

from . import revocation as revoke_rules
from .access_log_repo import AccessLogRepo
from .authorizations import AccessEntry, AccessOutcome, AccessToRecord, Authorization
from .authorizations_repo import AuthorizationsRepo
from .clients_repo import ClientsRepo
from .consents import Consent, ConsentChoice, Enrollment, RequestKey, Subject
from .consents_repo import ConsentsRepo, Withdrawal
from .purge import DeletionScope, Receipt, StepTask, TableCount, new_receipt_id
from .purges_repo import PurgesRepo
from .registry import Client
from .requests_repo import Committed, RequestsRepo
from .revocation import RevocationRecord
from .revocations_repo import RevocationsRepo
from .signup_repo import enroll_with_consents, grant_authorization, grant_consent
from .subjects_repo import SubjectsRepo
from .tables import (
    access_log_table,
    authorizations_table,
    clients_table,
    consents_table,
    metadata,
    purge_jobs_table,
    purge_steps_table,
    requests_table,
    revocation_sequence_table,
    revocations_table,
    service_generations_table,
    subjects_table,
)

__all__ = [
    "Committed",
    "ConsentStore",
    "Withdrawal",
    "access_log_table",
    "authorizations_table",
    "clients_table",
    "consents_table",
    "metadata",
    "purge_jobs_table",
    "purge_steps_table",
    "requests_table",
    "revocation_sequence_table",
    "revocations_table",
    "service_generations_table",
    "subjects_table",
]

#: Defaults: when a purge's second pass comes due; the longest a token lives
#: (with the verifiers' leeway).
SWEEP_DELAY = timedelta(seconds=30)
TOKEN_LIFE = timedelta(minutes=15, seconds=5)


class ConsentStore:
    """Everything the consent service stores, in one database: its repositories,
    and the service's interface to them.

    Build with ``await ConsentStore.open(engine)`` (tests) or ``ConsentStore(engine)``
    on a migrated database; the engine stays the caller's to dispose.
    ``sweep_delay`` is when a purge's second pass comes due (see ``purge``);
    ``token_life`` the longest lifetime of a token (revocation entries outlive
    their revocation by that much).
    """

    def __init__(
        self, engine: AsyncEngine, *, sweep_delay: timedelta = SWEEP_DELAY, token_life: timedelta = TOKEN_LIFE
    ) -> None:
        self._engine = engine
        # The lookup's write (record_accesses) in one step (see Transactions).
        self._tx = Transactions.of(engine)
        # Concurrent sign-ups, grants of consents and of authorizations share a
        # transaction and one commit (see GroupCommit and signup_repo).
        # PostgreSQL: a few groups at once (each statement is a round trip).
        self.signups = GroupCommit(
            self._tx, name="sign-up", max_in_flight=1 if engine.dialect.name == "sqlite" else 4
        )
        self.requests = RequestsRepo(engine)
        self.revocations = RevocationsRepo(engine, self.requests, token_life=token_life)
        self.purges = PurgesRepo(engine, sweep_delay=sweep_delay)
        self.subjects = SubjectsRepo(engine, self.requests, self.revocations, self.purges)
        self.consents = ConsentsRepo(engine, self.requests, self.subjects, self.purges)
        self.clients = ClientsRepo(engine, self.requests, self.revocations)
        self.authorizations = AuthorizationsRepo(engine, self.requests, self.subjects, self.clients)
        self.access_log = AccessLogRepo(engine, self._tx, self.subjects, self.authorizations)

    async def close(self) -> None:
        """Releases the synchronous side of the store (a server's stop hook)."""
        self._tx.close()

    @classmethod
    async def open(
        cls, engine: AsyncEngine, *, sweep_delay: timedelta = SWEEP_DELAY, token_life: timedelta = TOKEN_LIFE
    ) -> ConsentStore:
        """A store on ``engine``, creating missing tables."""
        await create_schema(engine, metadata)
        return cls(engine, sweep_delay=sweep_delay, token_life=token_life)

    # --- what spans every family -------------------------------------------------------

    async def purge_subject(
        self, key: RequestKey, *, subject_id: str, scope: DeletionScope, now: datetime
    ) -> tuple[Receipt, bool]:
        """Withdraws everything of the subject: deletes the consent service's own
        rows of it (the enrollment too for ``ACCOUNT``) and makes the job that
        purges every other service, in one transaction; returns the receipt and
        True. A repeat of the request returns its receipt and False; another
        request under its id is ``REQUEST_ID_REUSED``; an unknown subject
        ``SUBJECT_NOT_FOUND``."""
        receipt_id = new_receipt_id()
        account = scope is DeletionScope.ACCOUNT
        async with begin_write(self._engine) as conn:
            earlier = await self.purges.claim_request(
                conn, key, receipt_id=receipt_id, subject_id=subject_id, scope=scope, now=now
            )
            if earlier is not None:
                return earlier, False
            # Locked: a grant or a lookup being logged for the subject commits
            # first (and its rows are deleted here) or waits and finds it gone.
            await self.subjects.require(conn, subject_id, lock="update")
            if account:  # every token of the subject ends with the account
                await self.subjects.end_tokens(conn, subject_id, now, revoke_rules.NOTE_ACCOUNT_CLOSED)
            # The subject's rows but the receipts, children before parents.
            tables = [
                await self.requests.delete_of(conn, subject_id),
                await self.access_log.delete_of(conn, subject_id),
                await self.authorizations.delete_of(conn, subject_id),
                await self.consents.delete_of(conn, subject_id),
            ]
            if account:
                tables.append(await self.subjects.delete(conn, subject_id))
            return await self.purges.record_own_step(conn, receipt_id, tables, now), True

    async def subject_holdings(
        self, subject_id: str
    ) -> tuple[Subject, list[Consent], list[Authorization], list[AccessEntry], list[Receipt]]:
        """Everything this service holds about a subject (the access log oldest
        first); ``SUBJECT_NOT_FOUND`` for an unknown subject."""
        async with self._engine.connect() as conn:
            subject = await self.subjects.require(conn, subject_id)
            consents = await self.consents.of_subject(conn, subject_id)
            grants = await self.authorizations.of_subject(conn, subject_id)
            accesses = await self.access_log.of_subject(conn, subject_id)
        return subject, consents, grants, accesses, await self.purges.receipts_of(subject_id)

    # --- subjects ------------------------------------------------------------------------

    async def get_subject(self, subject_id: str) -> Subject | None:
        return await self.subjects.get(subject_id)

    async def subject_secret_hash(self, subject_id: str) -> str | None:
        return await self.subjects.secret_hash(subject_id)

    async def subject_credentials(self, subject_id: str) -> tuple[str | None, int] | None:
        return await self.subjects.credentials(subject_id)

    async def subject_generation(self, subject_id: str) -> int | None:
        """The generation the subject's tokens must carry; None: not enrolled."""
        held = await self.subjects.credentials(subject_id)
        return None if held is None else held[1]

    async def enroll_subject(
        self, key: RequestKey, subject_id: str | None, *, now: datetime,
        encode: Callable[[Enrollment], bytes], secret_hash: str | None = None,
        consents: Sequence[ConsentChoice] = (),
    ) -> Committed[Enrollment]:
        """Enrolls the subject with ``consents`` (``signup_repo``), in a group
        commit with the sign-ups made at the same moment."""
        choices = tuple(consents)
        return await self.signups.write(
            lambda conn: enroll_with_consents(
                conn, key, subject_id, choices, now=now, encode=encode, secret_hash=secret_hash
            )
        )

    async def rotate_subject_secret(
        self, key: RequestKey, *, subject_id: str, secret_hash: str, now: datetime,
        encode: Callable[[Subject], bytes],
    ) -> Committed[Subject]:
        return await self.subjects.rotate_secret(
            key, subject_id=subject_id, secret_hash=secret_hash, now=now, encode=encode
        )

    # --- consents ------------------------------------------------------------------------

    async def consents_for(
        self, subject_ids: Collection[str], sources: Collection[int], purpose: int
    ) -> list[Consent]:
        return await self.consents.for_subjects(subject_ids, sources, purpose)

    async def list_consents(
        self, subject_id: str, *, after: tuple[int, int] | None, limit: int
    ) -> tuple[list[Consent], bool]:
        return await self.consents.page(subject_id, after=after, limit=limit)

    async def grant_consent(
        self, key: RequestKey, *, subject_id: str, source: int, purpose: int, expire_time: datetime | None,
        now: datetime, encode: Callable[[Consent], bytes],
    ) -> Committed[Consent]:
        return await self.signups.write(
            lambda conn: grant_consent(
                conn, key, subject_id=subject_id, source=source, purpose=purpose, expire_time=expire_time,
                now=now, encode=encode,
            )
        )

    async def withdraw_consent(
        self, key: RequestKey, *, subject_id: str, source: int, purpose: int, now: datetime,
        encode: Callable[[Withdrawal], bytes],
    ) -> Committed[Withdrawal]:
        return await self.consents.withdraw(
            key, subject_id=subject_id, source=source, purpose=purpose, now=now, encode=encode
        )

    # --- registry ------------------------------------------------------------------------

    async def register_client(
        self, key: RequestKey, client: Client, *, generated_id: Callable[[], str] | None,
        encode: Callable[[Client], bytes],
    ) -> Committed[Client]:
        return await self.clients.register(key, client, generated_id=generated_id, encode=encode)

    async def get_client(self, client_id: str) -> Client | None:
        return await self.clients.get(client_id)

    # --- authorizations ------------------------------------------------------------------

    async def grant_authorization(
        self, key: RequestKey, *, subject_id: str, partner_id: str, purpose: int, scope: int,
        expire_time: datetime, now: datetime, encode: Callable[[Authorization], bytes],
    ) -> Committed[Authorization]:
        return await self.signups.write(
            lambda conn: grant_authorization(
                conn, key, subject_id=subject_id, partner_id=partner_id, purpose=purpose, scope=scope,
                expire_time=expire_time, now=now, encode=encode,
            )
        )

    async def revoke_authorization(
        self, key: RequestKey, *, subject_id: str, partner_id: str, purpose: int, now: datetime,
        encode: Callable[[Authorization], bytes],
    ) -> Committed[Authorization]:
        return await self.authorizations.revoke(
            key, subject_id=subject_id, partner_id=partner_id, purpose=purpose, now=now, encode=encode
        )

    async def authorization(self, subject_id: str, partner_id: str, purpose: int) -> Authorization | None:
        return await self.authorizations.get(subject_id, partner_id, purpose)

    async def list_authorizations(
        self, subject_id: str, *, after: tuple[str, int] | None, limit: int
    ) -> tuple[list[Authorization], bool]:
        return await self.authorizations.page(subject_id, after=after, limit=limit)

    # --- the access log ------------------------------------------------------------------

    async def record_access(
        self, *, subject_id: str, partner_id: str, purpose: int, transaction_id: str, answer_kind: str,
        answer: bytes, response: bytes, now: datetime,
    ) -> tuple[AccessEntry, bool]:
        return await self.access_log.record(
            subject_id=subject_id, partner_id=partner_id, purpose=purpose, transaction_id=transaction_id,
            answer_kind=answer_kind, answer=answer, response=response, now=now,
        )

    async def record_accesses(self, items: Sequence[AccessToRecord], *, now: datetime) -> list[AccessOutcome]:
        return await self.access_log.record_batch(items, now=now)

    async def access_by_transaction(
        self, partner_id: str, transaction_id: str, *, now: datetime
    ) -> AccessEntry | None:
        return await self.access_log.by_transaction(partner_id, transaction_id, now=now)

    async def list_access_log(
        self, subject_id: str, *, after: tuple[datetime, str] | None, limit: int
    ) -> tuple[list[AccessEntry], bool]:
        return await self.access_log.page(subject_id, after=after, limit=limit)

    # --- purges (the worker's steps: ``purge.PurgeStore``) ---------------------------------

    async def receipt(self, receipt_id: str) -> Receipt | None:
        return await self.purges.receipt(receipt_id)

    async def receipts_of(self, subject_id: str) -> list[Receipt]:
        return await self.purges.receipts_of(subject_id)

    async def claim_due_steps(self, now: datetime, lease_until: datetime, limit: int) -> list[StepTask]:
        return await self.purges.claim_due_steps(now, lease_until, limit)

    async def complete_step(
        self, receipt_id: str, position: int, tables: Sequence[TableCount], now: datetime
    ) -> None:
        await self.purges.complete_step(receipt_id, position, tables, now)

    async def fail_step(
        self, receipt_id: str, position: int, attempts: int, retry_at: datetime, error: str
    ) -> None:
        await self.purges.fail_step(receipt_id, position, attempts, retry_at, error)

    async def release_step(self, receipt_id: str, position: int, now: datetime) -> None:
        await self.purges.release_step(receipt_id, position, now)

    async def next_step_time(self) -> datetime | None:
        return await self.purges.next_step_time()

    # --- revocation ----------------------------------------------------------------------

    async def service_generation(self, service_id: str) -> int:
        return await self.revocations.service_generation(service_id)

    async def revocations_after(
        self, after: int, *, now: datetime, limit: int = revoke_rules.PAGE_MAX
    ) -> tuple[list[RevocationRecord], int, bool, bool]:
        return await self.revocations.after(after, now=now, limit=limit)

    async def prune_revocations(self, now: datetime) -> int:
        return await self.revocations.prune(now)

    async def revoke_token(
        self, key: RequestKey, *, token_id: str, note: str, now: datetime,
        encode: Callable[[RevocationRecord], bytes],
    ) -> Committed[RevocationRecord]:
        return await self.revocations.revoke_token(key, token_id=token_id, note=note, now=now, encode=encode)

    async def revoke_tokens(
        self, key: RequestKey, *, kind: str, principal_id: str, service: bool, note: str,
        now: datetime, encode: Callable[[RevocationRecord], bytes],
    ) -> Committed[RevocationRecord]:
        """Revokes every token of a subject (``kind`` "subject") or a client
        ("client": a registered one, or a configured service when ``service``)
        issued so far: raises its generation and appends the entry.
        ``SUBJECT_NOT_FOUND`` / ``CLIENT_NOT_FOUND`` for an unknown id."""
        if kind == REVOKE_SUBJECT:
            return await self.subjects.revoke_tokens(
                key, subject_id=principal_id, note=note, now=now, encode=encode
            )
        if service:
            return await self.revocations.revoke_service_tokens(
                key, service_id=principal_id, note=note, now=now, encode=encode
            )
        return await self.clients.revoke_tokens(key, client_id=principal_id, note=note, now=now, encode=encode)

    async def revoke_client(
        self, key: RequestKey, *, client_id: str, note: str, now: datetime,
        encode: Callable[[tuple[Client, RevocationRecord]], bytes],
    ) -> Committed[tuple[Client, RevocationRecord]]:
        return await self.clients.revoke(key, client_id=client_id, note=note, now=now, encode=encode)
