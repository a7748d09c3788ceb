"""``creditscore export-training`` against the running suite: the Parquet file holds
the point-in-time matrix of exactly the records consented to for model development,
pseudonymised, and trains the model the same rows in memory train."""

from __future__ import annotations

import asyncio

import numpy as np

from creditscore.cli import main
from creditscore.cli.run import load_population
from creditscore.cli.training_parquet import Pseudonyms, read_training_matrix
from creditscore.common.v1 import common_pb2 as c
from creditscore.consent.v1 import consent_pb2, consent_pb2_grpc
from creditscore.features.catalog import SOURCE_OF_BODY
from creditscore.features.engine import point_in_time_matrix


def _withheld(population) -> set[tuple[str, int]]:
    """(subject, source) pairs the demo's consent pattern refused at ingest: the
    external records of every 5th subject that has any."""
    with_external = [s.subject_id for s in population.subjects if c.DATA_SOURCE_EXTERNAL in s.sources]
    return {(sid, c.DATA_SOURCE_EXTERNAL) for sid in with_external[::5]}


async def test_export_training_writes_the_model_development_matrix_as_parquet(inprocess_suite, tmp_path, monkeypatch):
    suite = inprocess_suite.suite
    population, _ = await load_population(suite, 40, seed=21, out=lambda *_: None)
    applicants = {o.subject_id for o in population.outcomes}
    payer = next(s.subject_id for s in population.subjects
                 if s.subject_id in applicants and c.DATA_SOURCE_PAYMENTS in s.sources)
    quitter = next(s.subject_id for s in population.subjects if s.subject_id in applicants and s.subject_id != payer)
    # payer withdraws model development for payments (its bills stay for scoring),
    # quitter for loan outcomes: neither may reach the training file.
    channel = await suite.operator_channel("consent_service")
    try:
        stub = consent_pb2_grpc.ConsentServiceStub(channel)
        for sid, source in ((payer, c.DATA_SOURCE_PAYMENTS), (quitter, c.DATA_SOURCE_OUTCOMES)):
            await stub.WithdrawConsent(consent_pb2.WithdrawConsentRequest(
                request_id=f"no-dev-{sid}", subject_id=sid, source=source, purpose=c.PURPOSE_MODEL_DEVELOPMENT),
                timeout=10)
    finally:
        await channel.close()

    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(b"a key of the operator's, 32 bytes")
    monkeypatch.setenv("CREDITSCORE_TOKEN", await suite.operator_token())
    out = tmp_path / "training.parquet"
    code = await asyncio.to_thread(main, [
        "export-training", "--ingest", suite.addr("ingest_service"), "--out", str(out), "--rows-per-group", "7",
        "--pseudonym-key-file", str(key_file), "--quiet"])
    assert code == 0
    data = read_training_matrix(out)
    assert data.row_groups > 1
    assert "model development only" in data.metadata["source"]

    withheld = _withheld(population) | {(payer, c.DATA_SOURCE_PAYMENTS)}
    direct = point_in_time_matrix(
        [r for r in population.records if (r.subject_id, SOURCE_OF_BODY[str(r.WhichOneof("body"))]) not in withheld],
        [o for o in population.outcomes if o.subject_id != quitter])
    assert len(data) == len(direct) == len(population.outcomes) - 1

    import pyarrow.parquet as pq

    keys = pq.read_table(out, columns=["subject_key"]).column(0).to_pylist()
    pseudonym = Pseudonyms.keyed(key_file.read_bytes())
    expected_keys = [pseudonym(s) for s in direct.subject_ids]
    assert Pseudonyms.keyed(key_file.read_bytes())(quitter) not in keys
    # The same rows (one application per subject), whatever order the export gave them in.
    order_file, order_direct = np.argsort(np.array(keys)), np.argsort(np.array(expected_keys))
    assert [keys[i] for i in order_file] == [expected_keys[i] for i in order_direct]
    assert data.y[order_file].tolist() == direct.y[order_direct].tolist()
    assert np.array_equal(data.X[order_file], direct.X[order_direct], equal_nan=True)
    # The payer's payment features are "no data" in the file, not what scoring sees.
    row = keys.index(pseudonym(payer))
    assert np.isnan(data.X[row, :5]).all()
    with_payments = point_in_time_matrix(
        [r for r in population.records if (r.subject_id, SOURCE_OF_BODY[str(r.WhichOneof("body"))])
         not in _withheld(population)],
        [o for o in population.outcomes if o.subject_id == payer])
    assert not np.isnan(with_payments.X[0, :5]).all()
