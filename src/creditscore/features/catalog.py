"""The feature catalog: the one list of features the feature service computes and
scorecards refer to. One entry per feature, in the order of every feature vector.

``direction`` says which way is better where it is known (+1: higher is better,
-1: lower is better); the trainer keeps bins monotone in that direction. A missing
value ("no data") always has a bin of its own; it is never imputed, and when
that bin costs points the reason says so (``missing_text``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from creditscore.common.v1 import common_pb2

__all__ = ["CATALOG", "FEATURE_NAMES", "SOURCE_OF_BODY", "Feature", "by_name", "features_of_source", "sources_used"]

_S = common_pb2.DataSource


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    source: int  # common_pb2.DataSource
    window_months: int | None  # None: not windowed (state or all-time)
    direction: int  # +1 higher is better, -1 lower is better
    reason_code: str
    reason_text: str
    actionable: bool
    improve_hint: str = ""
    missing: str = "no data: a bin of its own"
    # The reason shown when the points are lost for having no data at all
    # (code ``<reason_code>_NO_DATA``): "no ratings", not "low ratings".
    missing_text: str = ""

    @property
    def missing_reason_code(self) -> str:
        return f"{self.reason_code}_NO_DATA"


CATALOG: tuple[Feature, ...] = (
    # payments
    Feature("pay_ontime_ratio_12m", "Share of bills due in the last 12 months paid by their due date",
            _S.DATA_SOURCE_PAYMENTS, 12, +1, "PAY_ONTIME_RATIO_12M",
            "Some bills in the last 12 months were paid late or not at all", True,
            "Pay every bill by its due date",
            missing_text="No bills due in the last 12 months on record"),
    Feature("pay_worst_days_late_12m",
            "Most days any bill due in the last 12 months was paid late (or is unpaid past due)",
            _S.DATA_SOURCE_PAYMENTS, 12, -1, "PAY_WORST_DAYS_LATE_12M",
            "A bill in the last 12 months was paid very late", True,
            "Avoid paying any bill more than a few days late",
            missing_text="No bills due in the last 12 months on record"),
    Feature("pay_bills_paid_count", "Bills paid, all time",
            _S.DATA_SOURCE_PAYMENTS, None, +1, "PAY_BILLS_PAID_COUNT",
            "Short record of bills paid", True,
            "Pay your regular bills through a connected account",
            missing_text="No bill payments on record"),
    Feature("pay_utility_telecom_months_12m", "Months in the last 12 with a utility or telecom bill paid",
            _S.DATA_SOURCE_PAYMENTS, 12, +1, "PAY_UTILITY_TELECOM_MONTHS_12M",
            "Few months with utility or phone bills paid", True,
            "Keep utility and phone bills paid every month",
            missing_text="No utility or phone bills on record"),
    Feature("pay_unpaid_past_due_amount", "Amount of bills now unpaid past their due date (major units)",
            _S.DATA_SOURCE_PAYMENTS, None, -1, "PAY_UNPAID_PAST_DUE",
            "Bills are unpaid past their due date", True,
            "Pay the bills that are past due",
            missing_text="No bill payments on record"),
    # commerce as buyer
    Feature("buyer_completion_rate_12m", "Share of orders placed in the last 12 months that completed",
            _S.DATA_SOURCE_COMMERCE, 12, +1, "BUYER_COMPLETION_RATE_12M",
            "Many orders placed did not complete", True,
            "Complete the orders you place",
            missing_text="No orders placed in the last 12 months"),
    Feature("buyer_cancel_dispute_rate_12m",
            "Share of orders placed in the last 12 months cancelled by you, disputed or unpaid",
            _S.DATA_SOURCE_COMMERCE, 12, -1, "BUYER_CANCEL_DISPUTE_RATE_12M",
            "Orders were cancelled, disputed or left unpaid", True,
            "Avoid cancelling or leaving orders unpaid",
            missing_text="No orders placed in the last 12 months"),
    Feature("buyer_order_count_12m", "Orders placed in the last 12 months",
            _S.DATA_SOURCE_COMMERCE, 12, +1, "BUYER_ORDER_COUNT_12M",
            "Few orders placed recently", False,
            missing_text="No orders placed on record"),
    # commerce as seller
    Feature("seller_fulfilment_rate_12m", "Share of orders sold in the last 12 months that were fulfilled",
            _S.DATA_SOURCE_COMMERCE, 12, +1, "SELLER_FULFILMENT_RATE_12M",
            "Orders sold were not always fulfilled", True,
            "Ship every order you sell",
            missing_text="No orders sold in the last 12 months"),
    Feature("seller_avg_rating_24m", "Average stars received as a seller in the last 24 months",
            _S.DATA_SOURCE_COMMERCE, 24, +1, "SELLER_AVG_RATING_24M",
            "Low ratings received as a seller", True,
            "Keep buyers satisfied",
            missing_text="No ratings received as a seller"),
    Feature("seller_dispute_rate_12m", "Share of orders sold in the last 12 months that were disputed or refunded",
            _S.DATA_SOURCE_COMMERCE, 12, -1, "SELLER_DISPUTE_RATE_12M",
            "Orders sold were disputed or refunded", True,
            "Resolve buyers' problems before they dispute",
            missing_text="No orders sold in the last 12 months"),
    # identity
    Feature("identity_months_at_residence", "Months at the current residence",
            _S.DATA_SOURCE_IDENTITY, None, +1, "IDENTITY_MONTHS_AT_RESIDENCE",
            "Short time at the current residence", False,
            missing_text="Time at the current residence is not known"),
    Feature("identity_months_with_phone", "Months with the current phone number",
            _S.DATA_SOURCE_IDENTITY, None, +1, "IDENTITY_MONTHS_WITH_PHONE",
            "Short time with the current phone number", False,
            missing_text="Time with the current phone number is not known"),
    Feature("identity_verified", "Identity verified (1) or not (0)",
            _S.DATA_SOURCE_IDENTITY, None, +1, "IDENTITY_NOT_VERIFIED",
            "Identity not verified", True,
            "Verify your identity",
            missing_text="Identity verification is not on record"),
    Feature("history_months", "Months since the subject's first record (length of the record)",
            _S.DATA_SOURCE_UNSPECIFIED, None, +1, "HISTORY_MONTHS",
            "Short history of records", False,
            missing_text="No records on file"),
    # external
    Feature("ext_delinquencies_24m", "Delinquencies reported in the last 24 months",
            _S.DATA_SOURCE_EXTERNAL, 24, -1, "EXT_DELINQUENCIES_24M",
            "Delinquencies reported in the last 24 months", True,
            "Bring every account up to date",
            missing_text="No records from lenders, agencies or merchants"),
    Feature("ext_judgments_arrears_60m", "Court judgments or tax arrears in the last 5 years",
            _S.DATA_SOURCE_EXTERNAL, 60, -1, "EXT_JUDGMENTS_ARREARS_60M",
            "Court judgments or tax arrears on record", False,
            missing_text="No records from public agencies"),
    Feature("ext_open_loans", "Loan accounts open now",
            _S.DATA_SOURCE_EXTERNAL, None, -1, "EXT_OPEN_LOANS",
            "Many loan accounts open", True,
            "Pay down and close loan accounts",
            missing_text="No loan accounts on record"),
    Feature("ext_repayment_ontime_ratio_24m", "Share of loan repayments in the last 24 months made on time",
            _S.DATA_SOURCE_EXTERNAL, 24, +1, "EXT_REPAYMENT_ONTIME_RATIO_24M",
            "Loan repayments were late", True,
            "Make every loan repayment on time",
            missing_text="No loan repayments in the last 24 months on record"),
    Feature("ext_collections_60m", "Accounts sent to collection in the last 5 years",
            _S.DATA_SOURCE_EXTERNAL, 60, -1, "EXT_COLLECTIONS_60M",
            "Accounts sent to collection", False,
            missing_text="No records from lenders, agencies or merchants"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CATALOG)
assert all(f.missing_text for f in CATALOG), "every feature needs its no-data reason text"
_BY_NAME = {f.name: f for f in CATALOG}
#: Feature name -> its data source, for the features that have one.
_SCORED_SOURCE = {f.name: f.source for f in CATALOG if f.source != _S.DATA_SOURCE_UNSPECIFIED}
assert len(_BY_NAME) == len(CATALOG), "feature names must be unique"


def by_name(name: str) -> Feature:
    """The catalog entry for ``name``; KeyError for a name not in the catalog."""
    return _BY_NAME[name]


#: The data source a record belongs to, by its body (records.v1.Record's oneof).
SOURCE_OF_BODY: dict[str, int] = {
    "order": _S.DATA_SOURCE_COMMERCE,
    "rating": _S.DATA_SOURCE_COMMERCE,
    "bill": _S.DATA_SOURCE_PAYMENTS,
    "identity": _S.DATA_SOURCE_IDENTITY,
    "external": _S.DATA_SOURCE_EXTERNAL,
    "loan_outcome": _S.DATA_SOURCE_OUTCOMES,
}


def features_of_source(source: int) -> frozenset[str]:
    """The names of the catalog features computed from records of ``source``."""
    return frozenset(f.name for f in CATALOG if f.source == source)


def sources_used(values: Iterable[tuple[str, float | None]]) -> frozenset[int]:
    """The scored data sources with a value among ``(feature name, value)`` pairs
    (None: no data): what a score of that vector drew on. A feature of no source
    (``DATA_SOURCE_UNSPECIFIED``, such as ``history_months``) or a name not in the
    catalog counts for none."""
    source_of = _SCORED_SOURCE.get
    return frozenset({s for name, value in values if value is not None and (s := source_of(name)) is not None})
