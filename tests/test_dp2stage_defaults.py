"""DP-2Stage's defaults follow the authors' scripts (tejuafonja/DP-2Stage): sampling temperature,
plain cross-entropy in stage 1, a linear learning-rate decay per optimiser step, the fixed column
order [target] + the rest sorted by name, generation until N valid rows with a tolerant parser,
and the perplexity metric's token accounting. Tiny random-init models throughout."""

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")
pytest.importorskip("transformers")

from dparena.datasets.adult import SCHEMA  # noqa: E402
from dparena.datasets.schema import Categorical, Numeric, TableSchema  # noqa: E402
from dparena.methods import methods  # noqa: E402
from dparena.methods.base import Task  # noqa: E402
from dparena.methods.dp2stage import loss as L  # noqa: E402
from dparena.methods.dp2stage.lm import load_lm  # noqa: E402
from dparena.methods.dp2stage.serialize import KEY, Serializer, column_orders  # noqa: E402
from dparena.privacy import Ledger  # noqa: E402
from dparena.types import Budget  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
SORTED = ["income"] + sorted(n for n in SCHEMA.names if n != "income")


def _tiny(vocab=50, seed=0):
    import transformers

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=32, n_embd=16, n_layer=1,
                                      n_head=2, bos_token_id=0, eos_token_id=0,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return transformers.GPT2LMHeadModel(cfg)


# rows of different lengths, so a token-pooled mean differs from a mean of per-row means
ROWS = [([0, 5, 6, 7, 8, 9, 10, 0], [L.IGNORE, 0, 2, 1, 1, 2, 1, 2]),
        ([0, 9, 3, 0], [L.IGNORE, 0, 1, 2]),
        ([0, 4, 4, 5, 6, 0], [L.IGNORE, 0, 2, 1, 2, 2])]


class _LRs:
    """Records the learning rate of every real AdamW update (Opacus' skipped micro-batch steps
    never reach the wrapped AdamW)."""

    def __enter__(self):
        self.lrs = []

        def hook(opt, args, kwargs):
            if type(opt) is torch.optim.AdamW:
                self.lrs.append(opt.param_groups[0]["lr"])

        self.handle = torch.optim.optimizer.register_optimizer_step_pre_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _linear(lr, total):
    # transformers' get_scheduler("linear", num_warmup_steps=0): step k uses lr * (T - k) / T
    return [lr * (total - k) / total for k in range(total)]


# ---------------------------------------------------------------------------- 4: column order
def test_fixed_order_is_target_then_the_rest_sorted_by_name():
    rng = np.random.default_rng(0)
    assert column_orders(SCHEMA.names, 2, False, rng, "income") == [SORTED, SORTED]
    schema_order = ["income"] + [n for n in SCHEMA.names if n != "income"]
    assert column_orders(SCHEMA.names, 1, False, rng, "income", order="schema") == [schema_order]
    m = methods.create("dp2stage", model="tiny")
    ser = Serializer(SCHEMA, "great")
    row = {c.name: (c.categories[0] if isinstance(c, Categorical) else c.lower)
           for c in SCHEMA.columns}
    (text, spans), = m._texts(ser, pd.DataFrame([row]), rng, "income")
    assert [text[s.start:s.end] for s in spans if s.group == KEY] == SORTED
    assert text.startswith(" income is <=50K, age is 17, capital-gain is 0, capital-loss is 0,")
    old = methods.create("dp2stage", model="tiny", column_order="schema")
    (text, spans), = old._texts(ser, pd.DataFrame([row]), rng, "income")
    assert [text[s.start:s.end] for s in spans if s.group == KEY] == schema_order


def test_ood_stage1_table_puts_its_own_target_first(assets):
    from dparena.methods.dp2stage.pseudo import german_table

    _, schema = german_table(assets.path("german-data"))
    assert schema.target == "credit-risk"


# ---------------------------------------------------------------------------- 5: parsing
def _row_text(ser, **change):
    row = {c.name: (c.categories[0] if isinstance(c, Categorical) else c.lower)
           for c in SCHEMA.columns}
    row.update(change)
    return ser.serialize(row, SORTED)[0], row


def test_parser_normalises_case_and_whitespace_to_the_public_categories():
    ser = Serializer(SCHEMA, "great")
    text, row = _row_text(ser, workclass="Private", income=">50K")
    assert ser.parse(text) == row
    variant = (text.replace("workclass is Private", "workclass is  PRIVATE ")
               .replace("income is >50K", "income is >50k"))
    assert ser.parse(variant) == row  # mapped onto the public spelling
    assert ser.parse(text.replace(", ", ",")) == row  # no space after the separator
    assert ser.parse(text.replace("age is 17", "age  is 17")) == row
    assert ser.parse(text.replace("workclass is Private", "workclass is Nobody")) is None
    assert ser.parse(text.replace("workclass is Private", "workclass is privat")) is None
    assert ser.parse(text.replace("workclass is Private", "workclass is pri vate")) is None
    # a repeated key: the last occurrence counts (the reference's deserializer overwrites)
    assert ser.parse(text + ", age is 40")["age"] == 40.0
    assert ser.parse(text + ", age is old") is None
    txt = Serializer(SCHEMA, "text")
    t, row2 = _row_text(txt)
    assert txt.parse(t.replace(". The ", ".The ").replace("The age", "age")) == row2


def test_parser_case_folding_never_picks_between_two_public_categories():
    schema = TableSchema((Categorical("c", ("ab", "AB", "Cd")), Numeric("x", 0.0, 3.0)))
    ser = Serializer(schema, "great")
    assert ser.parse(" c is AB, x is 1") == {"c": "AB", "x": 1.0}
    assert ser.parse(" c is ab, x is 1") == {"c": "ab", "x": 1.0}
    assert ser.parse(" c is Ab, x is 1") is None  # ambiguous: neither
    assert ser.parse(" c is cD, x is 1") == {"c": "Cd", "x": 1.0}
    comma = TableSchema((Categorical("c", ("a,b", "c")), Numeric("x", 0.0, 3.0)))
    ser = Serializer(comma, "great")  # a category holds the bare separator: split on ", " only
    assert ser.parse(" c is a,b, x is 1") == {"c": "a,b", "x": 1.0}
