"""Point-in-time training matrices: features as of each application, never later."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from creditscore.features.catalog import FEATURE_NAMES
from creditscore.features.engine import SubjectState, apply_record, feature_values, point_in_time_matrix
from creditscore.records.v1 import records_pb2 as R
from creditscore.sim import simulate


def _s(y: int, m: int, d: int) -> int:
    return int(datetime(y, m, d, 12, tzinfo=UTC).timestamp())


def _bill(subject: str, n: int, due: int, paid: int | None, event: int) -> R.Record:
    record = R.Record(record_id=f"bill-{subject}-{n}", subject_id=subject)
    record.event_time.seconds = event
    record.bill.category = R.BILL_CATEGORY_UTILITY
    record.bill.amount_due.currency_code = "USD"
    record.bill.amount_due.minor_units = 10_000
    record.bill.due_time.seconds = due
    if paid is not None:
        record.bill.amount_paid.minor_units = 10_000
        record.bill.paid_time.seconds = paid
    return record


def _outcome(subject: str, applied: int, bad: bool, n: int = 1) -> R.Record:
    record = R.Record(record_id=f"outcome-{subject}-{n}", subject_id=subject)
    record.event_time.seconds = applied + 183 * 86_400
    record.loan_outcome.application_time.seconds = applied
    record.loan_outcome.observed_time.seconds = applied + 183 * 86_400
    record.loan_outcome.label = R.LOAN_OUTCOME_LABEL_BAD if bad else R.LOAN_OUTCOME_LABEL_GOOD
    return record


def test_records_after_the_application_do_not_change_its_row():
    applied = _s(2026, 3, 1)
    history = [_bill("a", i, _s(2025, m, 10), _s(2025, m, 9), _s(2025, m, 9)) for i, m in enumerate(range(1, 13))]
    at_the_second = _bill("a", 100, _s(2026, 2, 10), None, applied)  # known exactly at application: used
    outcomes = [_outcome("a", applied, bad=False)]
    before = point_in_time_matrix([*history, at_the_second], outcomes)

    later = [
        _bill("a", 101, _s(2026, 2, 20), None, applied + 1),  # an unpaid bill known one second later
        _bill("a", 102, _s(2026, 3, 5), _s(2026, 3, 30), _s(2026, 3, 30)),
    ]
    after = point_in_time_matrix([*later, *history, at_the_second], outcomes)
    np.testing.assert_array_equal(before.X, after.X)
    row = dict(zip(before.feature_names, before.X[0], strict=True))
    assert row["pay_bills_paid_count"] == 12.0
    assert row["pay_unpaid_past_due_amount"] == 100.0  # the one known at the application
    assert row["pay_worst_days_late_12m"] == 19.0  # due 2026-02-10 12:00, as of 2026-03-01 12:00


def test_rows_follow_the_outcomes_and_snapshot_each_application_of_a_subject():
    history = [_bill("a", i, _s(2025, m, 10), _s(2025, m, 9), _s(2025, m, 9)) for i, m in enumerate(range(1, 13))]
    outcomes = [
        _outcome("b", _s(2025, 6, 1), bad=True),  # a subject with no records at all
        _outcome("a", _s(2025, 12, 1), bad=False, n=2),
        _outcome("a", _s(2025, 4, 1), bad=True, n=1),
    ]
    m = point_in_time_matrix(history, outcomes)
    assert m.feature_names == FEATURE_NAMES
    assert m.X.dtype == np.float64 and m.X.shape == (3, len(FEATURE_NAMES))
    assert m.y.dtype == np.int8 and m.y.tolist() == [1, 0, 1]
    assert m.subject_ids == ("b", "a", "a")
    assert m.application_times[1] == datetime(2025, 12, 1, 12, tzinfo=UTC)
    paid = FEATURE_NAMES.index("pay_bills_paid_count")
    assert np.isnan(m.X[0]).all()
    assert (m.X[1, paid], m.X[2, paid]) == (11.0, 3.0)


def test_matrix_equals_a_from_scratch_replay_up_to_each_application():
    population = simulate(150, seed=21)
    m = point_in_time_matrix(population.records, population.outcomes)
    assert len(m) == len(population.outcomes) > 0
    for row, outcome in enumerate(population.outcomes):
        applied = outcome.loan_outcome.application_time.seconds
        state = SubjectState()
        for record in population.records:
            if record.subject_id == outcome.subject_id and record.event_time.seconds <= applied:
                apply_record(state, record)
        expected = np.array([np.nan if v is None else v for v in feature_values(state, applied)])
        np.testing.assert_array_equal(m.X[row], expected)
        assert m.y[row] == (outcome.loan_outcome.label == R.LOAN_OUTCOME_LABEL_BAD)


def test_an_outcome_without_a_label_is_refused():
    outcome = _outcome("a", _s(2025, 6, 1), bad=False)
    outcome.loan_outcome.label = R.LOAN_OUTCOME_LABEL_UNSPECIFIED
    with pytest.raises(ValueError, match="label"):
        point_in_time_matrix([], [outcome])
    with pytest.raises(ValueError, match="application_time"):
        point_in_time_matrix([], [R.Record(record_id="x", subject_id="a")])
