"""DP-2Stage's defaults follow the authors' scripts (tejuafonja/DP-2Stage): sampling temperature,
plain cross-entropy in stage 1, a linear learning-rate decay per optimiser step, the fixed column
order [target] + the rest sorted by name, generation until N valid rows with a tolerant parser,
and the perplexity metric's token accounting. Tiny random-init models throughout."""

import tomllib

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")
pytest.importorskip("transformers")

from torch.optim.optimizer import register_optimizer_step_pre_hook  # noqa: E402

from dparena.datasets.adult import SCHEMA  # noqa: E402
from dparena.datasets.schema import Categorical, Numeric, TableSchema  # noqa: E402
from dparena.lm import loss as L  # noqa: E402
from dparena.methods import methods  # noqa: E402
from dparena.methods.base import Task  # noqa: E402
from dparena.methods.dp2stage.lm import load_lm  # noqa: E402
from dparena.methods.dp2stage.serialize import KEY, Serializer, column_orders  # noqa: E402
from dparena.methods.dp2stage.tokens import encode  # noqa: E402
from dparena.privacy import Ledger  # noqa: E402
from dparena.types import Budget  # noqa: E402
from tests.methods.dp2stage.models import tiny_gpt2  # noqa: E402
from tests.paths import ROOT  # noqa: E402

torch.set_num_threads(1)
SORTED = ["income"] + sorted(n for n in SCHEMA.names if n != "income")


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

        self.handle = register_optimizer_step_pre_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _linear(lr, total):
    # transformers' get_scheduler("linear", num_warmup_steps=0): step k uses lr * (T - k) / T
    return [lr * (total - k) / total for k in range(total)]


# ---------------------------------------------------------------------------- 1, 8: defaults
def test_defaults_are_the_reference_scripts_values():
    m = methods.create("dp2stage").config
    assert m.temperature == 0.7 and m.top_p == 1.0
    assert m.stage1_loss == "ce" and m.alpha == 0.65  # stage 1 plain CE, stage 2 weighted
    assert m.lr_schedule == "linear" and m.column_order == "sorted" and m.shuffle is False
    assert type(methods.create("dp2stage")).version == "4"
    assert methods.create("dp-standard").config.temperature == 0.7


def test_bad_new_parameters_are_config_errors():
    from dparena.errors import ConfigError

    for bad in ({"stage1_loss": "mse"}, {"lr_schedule": "cosine"}, {"column_order": "random"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            methods.create("dp2stage", **bad)


# ---------------------------------------------------------------------------- 2: stage-1 loss
def test_causal_lm_loss_pools_tokens_over_the_batch_as_transformers():
    model = tiny_gpt2()
    ids, mask, pos, groups = L.collate(ROWS, pad_id=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    ours = L.causal_lm_loss(logits, ids, groups)
    labels = ids.masked_fill(mask == 0, -100)
    hf = model(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels).loss
    assert torch.allclose(ours, hf, atol=1e-6)
    # by hand: every predicted token of the batch counts once
    terms = []
    for b, (row_ids, _) in enumerate(ROWS):
        for t in range(1, len(row_ids)):
            terms.append(-(logits[b, t - 1] - torch.logsumexp(logits[b, t - 1], 0))[row_ids[t]])
    assert torch.allclose(ours, torch.stack(terms).mean(), atol=1e-6)
    per_row = L.weighted_loss(logits, ids, groups, -1.0).mean()  # mean of per-row means
    assert not torch.allclose(ours, per_row, atol=1e-4)


def _first_loss(loss, alpha=0.65):
    from dparena.lm.train import stage1

    model = tiny_gpt2()
    ids, mask, pos, groups = L.collate(ROWS, pad_id=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    info = stage1(model, ROWS, 0, epochs=1, batch_size=len(ROWS), lr=1e-3, alpha=alpha,
                  loss=loss, lr_schedule="linear", generator=torch.Generator().manual_seed(0))
    return info, logits, ids, groups


def test_stage1_uses_plain_cross_entropy_by_hand():
    """One stage-1 step over a batch holding every row: its loss is the token-pooled CE."""
    info, logits, ids, groups = _first_loss("ce")
    assert info["stage1_steps"] == 1
    expected = float(L.causal_lm_loss(logits, ids, groups))
    assert info["stage1_loss_first"] == pytest.approx(expected, rel=1e-5)
    weighted = float(L.weighted_loss(logits, ids, groups, 0.65).mean())
    assert abs(weighted - expected) > 1e-3
    info_w, *_ = _first_loss("weighted")
    assert info_w["stage1_loss_first"] == pytest.approx(weighted, rel=1e-5)


def test_stage1_loss_is_part_of_the_stage1_cache_key():
    ce = methods.create("dp2stage", model="tiny")
    weighted = methods.create("dp2stage", model="tiny", stage1_loss="weighted")
    assert ce._stage1_key()["stage1_loss"] == "ce"
    assert ce._stage1_key() != weighted._stage1_key()
    # with plain CE stage 1 does not see alpha: one cached stage 1 serves every stage-2 alpha
    assert ce._stage1_key() == methods.create("dp2stage", model="tiny", alpha=0.3)._stage1_key()
    assert weighted._stage1_key() != methods.create(
        "dp2stage", model="tiny", stage1_loss="weighted", alpha=0.3)._stage1_key()
    for key in ("lr_schedule", "column_order"):
        assert key in ce._stage1_key()


def test_a_default_run_uses_plain_ce_in_stage1_and_the_weighted_loss_in_stage2(
        monkeypatch, adult_small):
    """End to end: stage 1 calls only the plain CE, stage 2 only the α = 0.65 per-row weighted
    loss (the reference's stage-1 --weighted_loss -1 and stage-2 --weighted_loss 0.65)."""
    from dparena.lm import train

    calls = []
    ce, weighted = train.causal_lm_loss, train.weighted_loss

    def spy_ce(logits, ids, groups):
        calls.append("ce")
        return ce(logits, ids, groups)

    def spy_weighted(logits, ids, groups, alpha):
        out = weighted(logits, ids, groups, alpha)
        calls.append((alpha, tuple(out.shape) == (ids.shape[0],)))  # one loss per row
        return out

    monkeypatch.setattr(train, "causal_lm_loss", spy_ce)
    monkeypatch.setattr(train, "weighted_loss", spy_weighted)
    private = adult_small.private.iloc[:32]
    task = Task(private=private, schema=SCHEMA, budget=Budget(4.0, 1e-5), n_samples=1, seed=0,
                public_size=32)
    methods.create("dp2stage", **FAST, stage1_rows=32, stage1_epochs=1.0, cache_stage1=False,
                   give_up_after=1).generate(task, Ledger())
    first_w = next(i for i, c in enumerate(calls) if c != "ce")
    assert first_w == 2 and set(calls[first_w:]) == {(0.65, True)}  # 2 stage-1 steps of 16


# ---------------------------------------------------------------------------- 3: LR schedule
def test_stage1_lr_decays_linearly_per_optimiser_step():
    from dparena.lm.train import stage1

    rows = ROWS * 4  # 12 rows, batch 3: 4 steps per epoch, 2 epochs
    for schedule, expected in (("linear", _linear(1e-2, 8)), ("constant", [1e-2] * 8)):
        with _LRs() as rec:
            info = stage1(tiny_gpt2(), rows, 0, epochs=2, batch_size=3, lr=1e-2, alpha=0.65,
                          loss="ce", lr_schedule=schedule,
                          generator=torch.Generator().manual_seed(0))
        assert info["stage1_steps"] == 8
        assert rec.lrs == pytest.approx(expected), schedule


def test_stage2_lr_decays_per_logical_batch_when_memory_manager_splits_it(adult_small):
    """Poisson batches of expected size 16 in physical chunks of 2: the LR moves once per logical
    batch (one DP-SGD step), not once per chunk, and reaches lr / T at the last step."""
    from dparena.lm.train import stage2_dp
    from dparena.privacy.dpsgd import plan_dp_sgd

    lm = load_lm("tiny", SCHEMA, seed=0, n_embd=32, n_layer=1)
    ser = Serializer(SCHEMA, "great")
    texts = [ser.serialize(r) for r in adult_small.private.head(64).to_dict("records")]
    rows = encode(lm.tokenizer, [t for t, _ in texts], [s for _, s in texts], lm.bos_id,
                    lm.eos_id)
    plan = plan_dp_sgd(epsilon=4.0, delta=1e-5, public_size=64, batch_size=16, epochs=2,
                       accountant="prv")
    with _LRs() as rec:
        steps = stage2_dp(lm.model, rows, lm.pad_id, plan=plan, epochs=2, physical_batch_size=2,
                          lr=1e-3, max_grad_norm=1.0, alpha=0.65, seed=0, lr_schedule="linear")
    assert steps == plan.steps == 8
    assert rec.lrs == pytest.approx(_linear(1e-3, 8))


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


# ---------------------------------------------------------------------------- 5: generation loop
FAST = dict(model="tiny", epochs=1, batch_size=16, physical_batch_size=16, lr=5e-3, n_embd=32,
            n_layer=1, max_new_tokens=4, gen_batch_size=8, prompt_dist="public")


def _fake_generate(every):
    """A stand-in for the LM: every ``every``-th completion is a valid row, the rest junk."""
    count = [0]
    ser = Serializer(SCHEMA, "great")
    base = {c.name: (c.categories[0] if isinstance(c, Categorical) else c.lower)
            for c in SCHEMA.columns}

    def fake(lm, prompts, **kwargs):
        out = []
        for p in prompts:
            count[0] += 1
            if count[0] % every == 0:
                row = {**base, **ser.parse_partial(p)}
                out.append(ser.serialize(row, SORTED)[0])
            else:
                out.append(p + " junk")
        return out

    return fake


def _run_with(monkeypatch, adult_small, every, n, **kw):
    from dparena.methods.dp2stage import method as method_module

    monkeypatch.setattr(method_module, "generate", _fake_generate(every))
    private = adult_small.private.iloc[:32]
    task = Task(private=private, schema=SCHEMA, budget=Budget(4.0, 1e-5), n_samples=n, seed=0,
                public_size=32)
    return methods.create("dp-standard", **FAST, **kw).generate(task, Ledger())


def test_generation_samples_until_n_valid_rows(monkeypatch, adult_small):
    syn = _run_with(monkeypatch, adult_small, every=5, n=10)  # 1 in 5 valid: needs ~50 attempts
    assert len(syn.data) == 10 and syn.info["valid_rows"] == 10
    assert syn.info["shortfall"] == 0 and "warning" not in syn.info
    assert syn.info["attempts"] >= 50


def test_generation_stops_at_its_cap_and_reports_the_shortfall(monkeypatch, adult_small):
    syn = _run_with(monkeypatch, adult_small, every=9, n=10, max_attempts=3.0)
    assert syn.info["attempts"] <= 30 and 0 < syn.info["valid_rows"] < 10
    assert syn.info["shortfall"] == 10 - syn.info["valid_rows"] == 10 - len(syn.data)
    assert "shortfall" in syn.info["warning"]
    assert "shortfall" in type(methods.create("dp2stage")).released_info


# ---------------------------------------------------------------------------- 6: perplexity
def test_perplexity_does_not_score_the_first_token_and_counts_eos_as_other():
    """As the reference (rows tokenized without BOS, so their first token is never predicted):
    the prediction from our BOS is left out; the end-of-row token is one 'other' token per row."""
    from dparena.lm.loss import token_ce
    from dparena.methods.dp2stage.tokens import LMScorer
    from dparena.metrics import metrics

    assert metrics.get("perplexity").version == "2"
    lm = load_lm("tiny", SCHEMA, seed=0, n_embd=32, n_layer=1)
    ser = Serializer(SCHEMA, "great")
    frame = pd.DataFrame([_row_text(ser)[1], _row_text(ser, age=44.0, sex="Male")[1]])
    scorer = LMScorer(lm, ser, shuffle=False, first="income")
    sums = scorer.group_nll(frame)
    texts = [ser.serialize(r, SORTED) for r in frame.to_dict("records")]
    rows = encode(lm.tokenizer, [t for t, _ in texts], [s for _, s in texts], lm.bos_id,
                    lm.eos_id)
    expected = {g: [0.0, 0] for g in range(3)}
    with torch.no_grad():
        for ids, groups in rows:
            t = torch.tensor([ids])
            ce = token_ce(lm.model(input_ids=t).logits, t)[0]
            for j in range(1, len(ce)):  # target j + 1; j = 0 would be the first text token
                expected[groups[j + 1]][0] += float(ce[j])
                expected[groups[j + 1]][1] += 1
    for g, name in enumerate(("key", "value", "other")):
        assert sums[name][1] == expected[g][1]
        assert sums[name][0] == pytest.approx(expected[g][0], rel=1e-5)
    assert sum(n for _, n in sums.values()) == sum(len(ids) - 2 for ids, _ in rows)


def test_perplexity_max_rows_zero_scores_every_row():
    from dparena.metrics import metrics

    assert metrics.create("perplexity", max_rows=0).max_rows == 0


# ---------------------------------------------------------------------------- 7: the paper suite
def test_paper_suite_sets_the_reference_values():
    suite = tomllib.loads((ROOT / "benchmarks/suites/paper-dp2stage.toml").read_text())
    lm = [m for s in suite["section"] for m in s["methods"]
          if m["name"] in ("dp2stage", "dp-standard")]
    assert len(lm) == 5  # Adult: dp2stage-u, dp2stage-o, dp-standard; Airline: dp2stage-u, dp-standard
    for entry in lm:
        p = entry["params"]
        assert p["temperature"] == 0.7 and p["top_p"] == 1.0
        assert p["lr_schedule"] == "linear" and p["column_order"] == "sorted"
        assert p["lr"] == 5e-4 and p["batch_size"] == 32 and p["physical_batch_size"] == 16
        assert p["max_new_tokens"] == 200 and p["gen_batch_size"] == 100
        methods.create(entry["name"], **p)  # every parameter exists
        if entry["name"] == "dp2stage":
            assert p["stage1_loss"] == "ce" and p["alpha"] == 0.65
            assert p["stage1_lr"] == 5e-4 and p["stage1_batch_size"] == 32
            assert p["stage1_epochs"] == 5.0
