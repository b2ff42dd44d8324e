"""A method that ran but returned no record says so in its cells ("0 valid rows"), not "failed"."""

from __future__ import annotations

import pandas as pd

from dparena.harness.runner import Runner
from dparena.harness.store import Store
from dparena.harness.suite import parse_suite
from dparena.leaderboard.aggregate import build_tables
from dparena.leaderboard.render import to_markdown
from dparena.methods import methods
from dparena.methods.base import Method
from dparena.types import Modality, Synthetic


class _NoValidRows(Method):
    """Like an LM that never learned the format: books its budget, returns an empty table."""

    modality = Modality.TABULAR
    description = "returns no row"
    may_return_fewer = True

    def generate(self, task, ledger):
        ledger.gaussian("nothing useful", sigma=10.0, sensitivity=1.0)
        return Synthetic(pd.DataFrame(columns=task.schema.names),
                         info={"valid_rows": 0, "warning": "no valid row"})


if "test-no-valid-rows" not in methods:
    methods.register("test-no-valid-rows")(_NoValidRows)


def test_empty_output_cells_say_zero_valid_rows(tmp_path):
    raw = {"name": "z", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
           "section": [{"dataset": "adult", "dataset_params": {"n_private": 200, "n_eval": 200},
                        "n_samples": 50, "metrics": ["histogram-intersection", "ml-efficacy"],
                        "methods": [{"name": "test-no-valid-rows"},
                                    {"name": "independent-marginals"}]}]}
    store = Store(tmp_path / "runs.sqlite")
    summary = Runner(store).run(parse_suite(raw).specs)
    assert summary.ok == 2
    [table] = build_tables(Store(tmp_path / "runs.sqlite", mode="r").runs())
    row = next(r for r in table.rows if r.label == "test-no-valid-rows")
    assert row.cells["ml-efficacy/f1"].empty == "0 valid rows"
    assert row.cells["histogram-intersection"].stat.mean == 0.0  # still scored: ranks last
    other = next(r for r in table.rows if r.label == "independent-marginals")
    assert other.cells["ml-efficacy/f1"].stat is not None
    assert "0 valid rows" in to_markdown([table])
