"""The creditscore command's own paths (run is covered end to end in tests/e2e)."""

from __future__ import annotations

import json

from creditscore.cli import main


def test_simulate_writes_every_record_as_a_json_line(tmp_path, capsys):
    out = tmp_path / "records.jsonl"
    assert main(["simulate", "--subjects", "15", "--seed", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "15 subjects" in printed
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all(line["record"]["subjectId"].startswith("sim-") for line in lines)
    assert {line["producer_id"] for line in lines} <= {
        "marketplace", "wallet", "identity-agency", "bureau-partner", "lender"}


def test_unknown_command_is_an_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command" in capsys.readouterr().err
