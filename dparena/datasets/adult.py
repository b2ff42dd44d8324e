"""UCI Adult (census income), the standard DP tabular benchmark.

Private split: ``adult.data`` (32,561 rows). Eval split: ``adult.test`` (16,281 rows; its first line
is a comment and its labels end in "." — both stripped). The public schema below is declared from
the UCI documentation (``adult.names``) and census coding rules, never from the rows:

* categories are the lists in ``adult.names``;
* missing values: UCI writes unknown workclass, occupation and native-country as ``?``
  ("Convert Unknown to '?'", adult.names). We keep ``?`` as an explicit public category of those
  three columns, so every method and metric treats "unknown" as a value like any other and no row
  is dropped (dropping would change the private dataset's size silently);
* numeric bounds, each with its source (values outside are clipped by methods and counted in the
  edge bins by metrics):

  - age 17–90: the extraction kept AAGE > 16 (adult.names); the CPS top-codes age at 90;
  - education-num 1–16: one code per education level (the 16 categories of adult.names);
  - hours-per-week 1–99: the extraction kept HRSWK > 0 (adult.names); CPS top-code 99;
  - capital-gain 0–99,999: the CPS top-code of income amounts (the value 99,999 stands for it);
  - capital-loss 0–99,999: no top-code for losses is published; we use the same five-digit range
    as capital-gain. Chosen without reference to the data (an earlier 5,000 was picked just above
    the private maximum, which made the bound itself a function of the private split);
  - fnlwgt 1–10,000,000: the extraction kept AFNLWGT > 1 (adult.names); no upper bound is
    published, so we use a round cap (ten million people per sample record) that does not depend
    on the private split (it replaces 1,500,000, which had been read off the data).

``split = "dp2stage"`` reproduces the DP-2Stage paper's split (tejuafonja/DP-2Stage
``download_dataset.py``, run as its README says: ``-name adult --train_subset 30932
--valid_subset 1000 --split_by_seed --seed 1000 --use_full_dataset``): every categorical value
(income included) is stripped and ``str.capitalize()``-d ("United-States" → "United-states"; the
schema's categories are normalised the same way), the ``.`` of the test labels stripped,
``adult.data`` and ``adult.test`` pooled in that order and exact duplicate rows dropped (48,790
rows remain), then ``sample(30932, random_state=1000)`` is the training split (private), a
``sample(1000, random_state=1000)`` of the remaining rows the validation split (not used by
dparena), and the other 16,858 rows, in pooled order, the test split (eval). The reference also
shuffles the pooled rows once before those draws, with no seed (``save_files``:
``train_test.sample(len(train_test))``), so its exact rows cannot be reproduced; we leave the
pooled order as it is, which makes the split a deterministic draw from the same distribution.
N = 30,932 (the documented training size) for that split.
"""

from __future__ import annotations

import pandas as pd

from dparena.assets import AssetStore
from dparena.datasets.base import DatasetBundle, SubsampledDataset
from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import ConfigError
from dparena.types import Modality

MISSING = "?"
SPLITS = ("uci", "dp2stage")
# download_dataset.py (DP-2Stage): --train_subset 30932 --valid_subset 1000 --seed 1000
DP2STAGE_TRAIN, DP2STAGE_VALID, DP2STAGE_SEED = 30_932, 1_000, 1000

WORKCLASS = ("Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov",
             "State-gov", "Without-pay", "Never-worked")
EDUCATION = ("Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm",
             "Assoc-voc", "9th", "7th-8th", "12th", "Masters", "1st-4th", "10th", "Doctorate",
             "5th-6th", "Preschool")
MARITAL = ("Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed",
           "Married-spouse-absent", "Married-AF-spouse")
OCCUPATION = ("Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial",
              "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical",
              "Farming-fishing", "Transport-moving", "Priv-house-serv", "Protective-serv",
              "Armed-Forces")
RELATIONSHIP = ("Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried")
RACE = ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black")
SEX = ("Female", "Male")
COUNTRY = ("United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany",
           "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece", "South", "China", "Cuba",
           "Iran", "Honduras", "Philippines", "Italy", "Poland", "Jamaica", "Vietnam", "Mexico",
           "Portugal", "Ireland", "France", "Dominican-Republic", "Laos", "Ecuador", "Taiwan",
           "Haiti", "Columbia", "Hungary", "Guatemala", "Nicaragua", "Scotland", "Thailand",
           "Yugoslavia", "El-Salvador", "Trinadad&Tobago", "Peru", "Hong", "Holand-Netherlands")
INCOME = ("<=50K", ">50K")

SCHEMA = TableSchema(
    columns=(
        Numeric("age", 17, 90, integer=True),  # AAGE > 16 (adult.names); CPS top-code 90
        Categorical("workclass", WORKCLASS + (MISSING,)),
        Numeric("fnlwgt", 1, 10_000_000, integer=True),  # AFNLWGT > 1 (adult.names); round cap
        Categorical("education", EDUCATION),
        Numeric("education-num", 1, 16, integer=True),  # one code per education level
        Categorical("marital-status", MARITAL),
        Categorical("occupation", OCCUPATION + (MISSING,)),
        Categorical("relationship", RELATIONSHIP),
        Categorical("race", RACE),
        Categorical("sex", SEX),
        Numeric("capital-gain", 0, 99_999, integer=True),  # CPS top-code
        Numeric("capital-loss", 0, 99_999, integer=True),  # capital-gain's CPS range (no top-code)
        Numeric("hours-per-week", 1, 99, integer=True),  # HRSWK > 0 (adult.names); top-code 99
        Categorical("native-country", COUNTRY + (MISSING,)),
        Categorical("income", INCOME),
    ),
    target="income",
)


def _capitalize_categories(schema: TableSchema) -> TableSchema:
    """The schema with DP-2Stage's spelling of every category (``x.strip().capitalize()``)."""
    cols = tuple(Categorical(c.name, tuple(v.capitalize() for v in c.categories))
                 if isinstance(c, Categorical) else c for c in schema.columns)
    return TableSchema(columns=cols, target=schema.target)


DP2STAGE_SCHEMA = _capitalize_categories(SCHEMA)


def dp2stage_split(data: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, ...]:
    """(train, valid, test) as DP-2Stage's download_dataset.py, from the two parsed UCI files."""
    frames = []
    for frame in (data, test):
        frame = frame.copy()
        for col in SCHEMA.columns:
            if isinstance(col, Categorical):
                frame[col.name] = frame[col.name].map(lambda x: x.strip().capitalize())
        frames.append(frame)
    pooled = pd.concat(frames)
    pooled = pooled[~pooled.duplicated()].reset_index(drop=True)
    # (the reference shuffles `pooled` here without a seed; see the module docstring)
    train = pooled.sample(DP2STAGE_TRAIN, random_state=DP2STAGE_SEED)
    remain = pooled[~pooled.index.isin(train.index)]
    valid = remain.sample(DP2STAGE_VALID, random_state=DP2STAGE_SEED) \
        if len(remain) > DP2STAGE_VALID else remain
    rest = pooled[~pooled.index.isin(train.index) & ~pooled.index.isin(valid.index)]
    return (train.reset_index(drop=True), valid.reset_index(drop=True),
            rest.reset_index(drop=True))


def read_adult_file(path, skip_first_line: bool = False) -> pd.DataFrame:
    """Parse one raw UCI Adult file into a frame with the schema's columns and dtypes."""
    frame = pd.read_csv(
        path, header=None, names=SCHEMA.names, skipinitialspace=True,
        skiprows=1 if skip_first_line else 0, dtype=str, keep_default_na=False,
        skip_blank_lines=True,
    )
    frame = frame[frame["income"].str.len() > 0]
    frame["income"] = frame["income"].str.rstrip(".")
    for col in SCHEMA.columns:
        if isinstance(col, Numeric):
            frame[col.name] = frame[col.name].astype(float)
    return frame.reset_index(drop=True)


class TabularDataset(SubsampledDataset):
    """Shared subsampling parameters for tables: ``n_private``/``n_eval`` rows (None = all)."""

    modality = Modality.TABULAR

    def _subsample(self, frame: pd.DataFrame, n: int | None, salt: int) -> pd.DataFrame:
        idx = self.subsample_positions(len(frame), n, salt)
        return frame if idx is None else frame.iloc[idx].reset_index(drop=True)


class Adult(TabularDataset):
    """UCI Adult: private = adult.data (32,561 rows), eval = adult.test (16,281), target income.

    The public schema comes from ``adult.names`` (this module's docstring gives every bound and
    its source); ``?`` is an explicit public category of workclass, occupation and
    native-country. ``n_private``, ``n_eval``: subsample sizes. ``split = "dp2stage"`` is
    DP-2Stage's split (both files pooled and de-duplicated: 30,932 private / 16,858 eval rows,
    capitalised categories).
    """

    description = "UCI Adult census income (32,561 private / 16,281 eval rows), target income"
    version = "2"  # 2: capital-loss and fnlwgt bounds from documentation, not from the data
    extra = "tabular"
    public_data = True  # the UCI repository publishes every record

    N_PRIVATE = 32_561  # rows of adult.data (UCI documentation)

    def __init__(self, n_private: int | None = None, n_eval: int | None = None,
                 subsample_seed: int = 0, split: str = "uci"):
        super().__init__(n_private=n_private, n_eval=n_eval, subsample_seed=subsample_seed)
        if split not in SPLITS:
            raise ConfigError(f"adult: unknown split {split!r}; choose from {list(SPLITS)}")
        self.split = split
        if split == "dp2stage":
            self.N_PRIVATE = DP2STAGE_TRAIN  # its documented training size (download_dataset.py)

    @property
    def schema(self) -> TableSchema:
        return DP2STAGE_SCHEMA if self.split == "dp2stage" else SCHEMA

    def assets(self) -> list[str]:
        return ["adult-data", "adult-test"]

    def load(self, store: AssetStore) -> DatasetBundle:
        private = read_adult_file(store.path("adult-data"))
        evaluation = read_adult_file(store.path("adult-test"), skip_first_line=True)
        if self.split == "dp2stage":
            private, _valid, evaluation = dp2stage_split(private, evaluation)
        return DatasetBundle(
            private=self._subsample(private, self.n_private, 1),
            eval=self._subsample(evaluation, self.n_eval, 2),
            schema=self.schema,
        )
