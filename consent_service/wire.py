"""The consent service's domain values as protobuf messages (the servicer's replies
and the export document use the same forms)."""

from __future__ import annotations

from datetime import datetime

from creditscore.common.v1 import common_pb2
from creditscore.consent.v1 import consent_pb2
from creditscore.runtime import to_timestamp

from .authorizations import AccessEntry, AccessOutcome, AccessOutcomeKind, Authorization
from .consents import Consent, Subject
from .purge import Receipt, Step, TableCount
from .registry import Client
from .revocation import KIND_NUMBERS, RevocationRecord

__all__ = [
    "access_outcome_pb",
    "access_pb",
    "access_purpose",
    "authorization_pb",
    "authorization_scope",
    "consent_pb",
    "data_source",
    "partner_pb",
    "producer_pb",
    "purged_tables_pb",
    "receipt_pb",
    "revocation_pb",
    "subject_pb",
]


def subject_pb(subject: Subject) -> consent_pb2.Subject:
    return consent_pb2.Subject(
        subject_id=subject.subject_id, enroll_time=to_timestamp(subject.enroll_time)
    )


def consent_pb(consent: Consent, now: datetime) -> consent_pb2.Consent:
    """The wire form of ``consent`` with its state as of ``now``."""
    return consent_pb2.Consent(
        subject_id=consent.subject_id,
        source=data_source(consent.source),
        purpose=common_pb2.Purpose.ValueType(consent.purpose),
        state=consent_pb2.ConsentState.ValueType(consent.state_at(now)),
        grant_time=to_timestamp(consent.grant_time),
        expire_time=to_timestamp(consent.expire_time),
        withdraw_time=to_timestamp(consent.withdraw_time),
    )


def partner_pb(client: Client) -> consent_pb2.Partner:
    return consent_pb2.Partner(
        partner_id=client.client_id,
        display_name=client.display_name,
        register_time=to_timestamp(client.register_time),
    )


def producer_pb(client: Client) -> consent_pb2.Producer:
    return consent_pb2.Producer(
        producer_id=client.client_id,
        display_name=client.display_name,
        sources=[data_source(s) for s in sorted(client.sources)],
        register_time=to_timestamp(client.register_time),
    )


def authorization_pb(grant: Authorization, now: datetime) -> consent_pb2.Authorization:
    return consent_pb2.Authorization(
        subject_id=grant.subject_id,
        partner_id=grant.partner_id,
        partner_name=grant.partner_name,
        purpose=access_purpose(grant.purpose),
        scope=authorization_scope(grant.scope),
        state=consent_pb2.AuthorizationState.ValueType(grant.state_at(now)),
        grant_time=to_timestamp(grant.grant_time),
        expire_time=to_timestamp(grant.expire_time),
        revoke_time=to_timestamp(grant.revoke_time),
    )


def access_pb(entry: AccessEntry, *, with_response: bool) -> consent_pb2.AccessEntry:
    return consent_pb2.AccessEntry(
        access_id=entry.access_id,
        subject_id=entry.subject_id,
        partner_id=entry.partner_id,
        partner_name=entry.partner_name,
        purpose=access_purpose(entry.purpose),
        transaction_id=entry.transaction_id,
        scope=authorization_scope(entry.scope),
        answer=consent_pb2.AccessAnswer.FromString(entry.answer),
        access_time=to_timestamp(entry.access_time),
        response=entry.response if with_response else b"",
    )


def access_outcome_pb(outcome: AccessOutcome) -> consent_pb2.AccessOutcome:
    """A ``RecordAccesses`` outcome. A replayed entry carries the response stored
    with it (the caller answers with it again); a new one does not (the caller
    just sent it)."""
    reply = consent_pb2.AccessOutcome(
        kind=consent_pb2.AccessOutcomeKind.ValueType(outcome.kind),
        granted_sources=[data_source(s) for s in sorted(outcome.granted_sources)],
    )
    if outcome.entry is not None:
        reply.entry.CopyFrom(
            access_pb(outcome.entry, with_response=outcome.kind is AccessOutcomeKind.REPLAYED)
        )
    return reply


def purged_tables_pb(tables: tuple[TableCount, ...] | list[TableCount]) -> list[common_pb2.PurgedTable]:
    return [
        common_pb2.PurgedTable(table=t.table, deleted_rows=t.deleted, rewritten_rows=t.rewritten)
        for t in tables
    ]


def _step_pb(step: Step) -> consent_pb2.DeletionStep:
    return consent_pb2.DeletionStep(
        service=step.service,
        done=step.done,
        tables=purged_tables_pb(step.tables or ()),
        complete_time=to_timestamp(step.complete_time),
        attempts=step.attempts,
        last_error=step.last_error or "",
        pass_number=step.pass_,
    )


def receipt_pb(receipt: Receipt) -> consent_pb2.DeletionReceipt:
    return consent_pb2.DeletionReceipt(
        receipt_id=receipt.receipt_id,
        subject_id=receipt.subject_id,
        scope=consent_pb2.DeletionScope.ValueType(receipt.scope),
        source=data_source(receipt.source),
        request_time=to_timestamp(receipt.request_time),
        complete=receipt.complete,
        complete_time=to_timestamp(receipt.complete_time),
        steps=[_step_pb(s) for s in receipt.steps],
        deleted_rows=receipt.deleted_rows,
    )


def revocation_pb(record: RevocationRecord) -> consent_pb2.Revocation:
    return consent_pb2.Revocation(
        sequence=record.sequence,
        kind=consent_pb2.RevocationKind.ValueType(KIND_NUMBERS.get(record.kind, 0)),
        key=record.key,
        generation=record.generation,
        revoke_time=to_timestamp(record.revoke_time),
        expire_time=to_timestamp(record.expire_time),
        note=record.note,
    )


# The domain keeps enum fields as their numbers (``int``, as stored); on the wire
# they are typed as the enum they number.


def data_source(number: int) -> common_pb2.DataSource.ValueType:
    return common_pb2.DataSource.ValueType(number)


def access_purpose(number: int) -> common_pb2.AccessPurpose.ValueType:
    return common_pb2.AccessPurpose.ValueType(number)


def authorization_scope(number: int) -> common_pb2.AuthorizationScope.ValueType:
    return common_pb2.AuthorizationScope.ValueType(number)
