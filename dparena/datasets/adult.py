"""UCI Adult (census income), the standard DP tabular benchmark.

Private split: ``adult.data`` (32,561 rows). Eval split: ``adult.test`` (16,281 rows; its first line
is a comment and its labels end in "." — both stripped). The public schema below is declared from
the UCI documentation (``adult.names``) and census coding rules, never from the rows:

* categories are the lists in ``adult.names``;
* missing values: UCI writes unknown workclass, occupation and native-country as ``?``
  ("Convert Unknown to '?'", adult.names). We keep ``?`` as an explicit public category of those
  three columns, so every method and metric treats "unknown" as a value like any other and no row
  is dropped (dropping would change the private dataset's size silently);
* numeric bounds: age 17–90 (the extraction kept AAGE > 16; the CPS top-codes age at 90),
  education-num 1–16 (one code per education level), hours-per-week 1–99 (HRSWK > 0; CPS top-code
  99), capital-gain 0–99,999 (CPS top-code), capital-loss 0–5,000 and fnlwgt 0–1,500,000 (domain
  bounds wide enough for any census weight/loss in the extract; values outside are clipped by
  methods and counted in the edge bins by metrics).
"""

from __future__ import annotations

import pandas as pd

from dparena.assets import AssetStore
from dparena.datasets.base import DatasetBundle, SubsampledDataset
from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.types import Modality

MISSING = "?"

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
        Numeric("age", 17, 90, integer=True),
        Categorical("workclass", WORKCLASS + (MISSING,)),
        Numeric("fnlwgt", 0, 1_500_000, integer=True),
        Categorical("education", EDUCATION),
        Numeric("education-num", 1, 16, integer=True),
        Categorical("marital-status", MARITAL),
        Categorical("occupation", OCCUPATION + (MISSING,)),
        Categorical("relationship", RELATIONSHIP),
        Categorical("race", RACE),
        Categorical("sex", SEX),
        Numeric("capital-gain", 0, 99_999, integer=True),
        Numeric("capital-loss", 0, 5_000, integer=True),
        Numeric("hours-per-week", 1, 99, integer=True),
        Categorical("native-country", COUNTRY + (MISSING,)),
        Categorical("income", INCOME),
    ),
    target="income",
)


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
    description = "UCI Adult census income (32,561 private / 16,281 eval rows), target income"
    version = "1"
    extra = "tabular"

    @property
    def schema(self) -> TableSchema:
        return SCHEMA

    N_PRIVATE = 32_561  # rows of adult.data (UCI documentation)

    def assets(self) -> list[str]:
        return ["adult-data", "adult-test"]

    def load(self, store: AssetStore) -> DatasetBundle:
        private = read_adult_file(store.path("adult-data"))
        evaluation = read_adult_file(store.path("adult-test"), skip_first_line=True)
        return DatasetBundle(
            private=self._subsample(private, self.n_private, 1),
            eval=self._subsample(evaluation, self.n_eval, 2),
            schema=SCHEMA,
        )
