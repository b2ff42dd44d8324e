"""Machine-learning efficacy: train on synthetic, test on real (TSTR).

XGBoost and logistic regression are trained on the synthetic table to predict the schema's target
and tested on the real eval table. Reported per model and averaged over models: F1, ROC AUC and
accuracy. Two protocols (``protocol``):

* ``"dp2stage"`` (the default; metric version 2) follows the DP-2Stage reference code
  (tejuafonja/DP-2Stage: ``metrics/run.py`` → ``metrics/utility.py:efficacy_test`` →
  ``metrics/mlefficacy.py``, encoders in ``metrics/utils/transformer.py``), which the paper's
  tables average (``notebooks/tables.ipynb``: ``efficacy_{f1,auc,accuracy}`` = the mean over
  ``xgb`` and ``logistic``):

  - features: numeric columns standardised (``StandardScaler``) and categorical columns one-hot
    encoded over their string values, both fitted on eval ∪ synthetic; the target label-encoded
    over eval ∪ synthetic (sorted strings); ±inf becomes missing;
  - each model in a pipeline ``SimpleImputer()`` (mean) → ``RobustScaler()`` → model, fitted on the
    synthetic rows;
  - ``LogisticRegression(solver="lbfgs", class_weight="balanced", max_iter=50)`` (the reference
    also passes ``n_jobs=2``, which has no effect since scikit-learn 1.8); convergence warnings
    are silenced as there;
  - ``XGBClassifier(random_state=1000, n_jobs=2)``, every other hyper-parameter at XGBoost's
    default (100 trees, depth 6, learning rate 0.3, ``hist``);
  - binary F1 with the eval set's minority class as positive, ROC AUC of that class's predicted
    probability, accuracy; multi-class F1 is micro-averaged as in the reference (its multi-class
    AUC call raises; we use one-vs-rest micro AUC).

* ``"dparena-v1"`` (metric version 1) is dparena's earlier protocol: features encoded from the
  public schema only (numeric columns scaled by their public bounds, categorical columns one-hot
  over the public categories, unknown values all zeros), unweighted logistic regression
  (``max_iter=2000``), XGBoost with ``random_state`` = the run's seed; multi-class F1 and AUC
  macro-averaged.

In both, synthetic rows whose target is outside the public categories are dropped, and a synthetic
table whose target has a single class yields the scores of that constant predictor (AUC 0.5), not
an error. Differences from the reference that remain are listed in docs/protocols.md.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xgboost
from sklearn import linear_model, pipeline, preprocessing
from sklearn import metrics as skm
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer

from dparena.datasets.schema import Categorical, TableSchema
from dparena.errors import ConfigError, DparenaError
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import MetricValue, Modality, Synthetic

MODELS = ("xgboost", "logreg")
# protocol -> the metric version its values are stored under
PROTOCOLS = {"dp2stage": "2", "dparena-v1": "1"}
DP2STAGE_SEED = 1000  # XGBClassifier(random_state=1000) in the reference's mlefficacy.py


def encode_features(schema: TableSchema, frame) -> np.ndarray:
    """Public-schema encoding of every non-target column (protocol dparena-v1)."""
    parts = []
    for col in schema.columns:
        if col.name == schema.target:
            continue
        values = frame[col.name].to_numpy()
        if isinstance(col, Categorical):
            codes = col.codes(list(values))
            onehot = np.zeros((len(values), len(col.categories) + 1), dtype=np.float32)
            onehot[np.arange(len(values)), codes] = 1.0
            parts.append(onehot[:, :-1])
        else:
            x = (np.asarray(values, dtype=np.float64) - col.lower) / (col.upper - col.lower)
            parts.append(x[:, None].astype(np.float32))
    return np.concatenate(parts, axis=1)


def dp2stage_design(schema: TableSchema, synthetic, real):
    """The reference's ``DataTransformer(numerical_preprocess="standard", discrete_encode="onehot",
    target=...)`` fitted on eval ∪ synthetic (``fit_data=pd.concat([realdata, fakedata])`` in
    run.py): returns (x_syn, y_syn, x_real, y_real, labels), labels being the sorted target strings.
    """
    fit = pd.concat([real, synthetic])
    x_syn, x_real = [], []
    labels = None
    for col in schema.columns:
        fit_col = fit[col.name].to_numpy()
        if col.name == schema.target:
            encoder = preprocessing.LabelEncoder().fit(fit_col.astype(str))
            labels = encoder.classes_
            y_syn = encoder.transform(synthetic[col.name].to_numpy().astype(str))
            y_real = encoder.transform(real[col.name].to_numpy().astype(str))
            continue
        if isinstance(col, Categorical):
            encoder = preprocessing.OneHotEncoder(sparse_output=False, handle_unknown="ignore")
            encoder.fit(fit_col.astype(str).reshape(-1, 1))
            cast = str
        else:
            encoder = preprocessing.StandardScaler().fit(fit_col.astype(float).reshape(-1, 1))
            cast = float
        for frame, out in ((synthetic, x_syn), (real, x_real)):
            out.append(encoder.transform(frame[col.name].to_numpy().astype(cast).reshape(-1, 1)))
    x_syn, x_real = (np.concatenate(p, axis=1).astype(float) for p in (x_syn, x_real))
    for x in (x_syn, x_real):
        x[np.isinf(x)] = np.nan  # real_data[np.isin(real_data, [np.inf, -np.inf])] = None
    return x_syn, y_syn, x_real, y_real, labels


class MLEfficacy(Metric):
    """Train on synthetic, test on real: XGBoost and logistic regression predict the target.

    The DP-2Stage reference protocol (its ``metrics/utility.py``; agreement pinned in
    tests/metrics/test_fidelity.py, differences in docs/protocols.md): one-hot / standardised features
    fitted on eval ∪ synthetic, mean imputer and robust scaling, XGBoost (defaults, seed 1000) and
    balanced-class logistic regression (lbfgs, 50 iterations). F1 (positive = the eval set's
    minority class), ROC AUC and accuracy, per model and averaged (version 2).
    ``protocol = "dparena-v1"`` keeps the earlier public-schema encoding and unweighted LR.
    """

    modality = Modality.TABULAR
    description = "Train-on-synthetic, test-on-real F1 / ROC AUC / accuracy (XGBoost, logistic regression)"
    extra = "tabular"
    version = PROTOCOLS["dp2stage"]  # 2: the DP-2Stage protocol became the default

    def __init__(self, models: tuple[str, ...] | list[str] = MODELS, protocol: str = "dp2stage",
                 xgb_estimators: int | None = None, threads: int = 2):
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ConfigError(f"ml-efficacy: unknown models {unknown}; choose from {list(MODELS)}")
        if protocol not in PROTOCOLS:
            raise ConfigError(f"ml-efficacy: unknown protocol {protocol!r}; choose from "
                              f"{list(PROTOCOLS)}")
        self.models = tuple(models)
        self.protocol = protocol
        self.version = PROTOCOLS[protocol]
        # None = the protocol's: XGBoost's default (100) for dp2stage, 100 for dparena-v1
        self.xgb_estimators = xgb_estimators
        self.threads = threads

    def headline(self) -> list[str]:
        return [f"{self.name}/f1", f"{self.name}/auc", f"{self.name}/accuracy"]

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        schema: TableSchema = real.schema
        if schema.target is None:
            raise ConfigError(f"ml-efficacy needs a target column; dataset {ctx.dataset} has none")
        target = schema.column(schema.target)
        if not isinstance(target, Categorical):
            raise ConfigError("ml-efficacy supports categorical targets only")
        k_public = len(target.categories)
        syn_frame = synthetic.data[target.codes(list(synthetic.data[target.name])) < k_public]
        eval_frame = real.data[target.codes(list(real.data[target.name])) < k_public]
        if len(syn_frame) == 0:
            raise DparenaError("ml-efficacy: no synthetic row has a target in the public categories")
        if self.protocol == "dp2stage":
            x_syn, y_syn, x_eval, y_eval, labels = dp2stage_design(schema, syn_frame, eval_frame)
            k, seed = len(labels), DP2STAGE_SEED
        else:
            x_syn, x_eval = encode_features(schema, syn_frame), encode_features(schema, eval_frame)
            y_syn = target.codes(list(syn_frame[target.name]))
            y_eval = target.codes(list(eval_frame[target.name]))
            k, seed = k_public, ctx.seed
        counts = np.bincount(y_eval, minlength=k)
        positive = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        present = np.unique(y_eval)
        if self.protocol == "dp2stage":  # mlefficacy.py _score: binary unless > 2 eval labels
            binary, average = len(present) <= 2, "micro"
        else:
            binary, average = k == 2, "macro"

        per_model: dict[str, dict[str, float]] = {}
        for model in self.models:
            proba, pred = self._fit_predict(model, x_syn, y_syn, x_eval, k, seed)
            scores = {"accuracy": skm.accuracy_score(y_eval, pred)}
            if binary:
                scores["f1"] = skm.f1_score(y_eval == positive, pred == positive, zero_division=0)
                score = proba[:, positive]
                scores["auc"] = (skm.roc_auc_score(y_eval == positive, score)
                                 if len(present) == 2 else float("nan"))
            else:
                scores["f1"] = skm.f1_score(y_eval, pred, average=average, zero_division=0)
                p = proba[:, present]
                p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
                scores["auc"] = skm.roc_auc_score(y_eval, p, multi_class="ovr", labels=present,
                                                  average=average)
            per_model[model] = scores

        out = []
        for key in ("f1", "auc", "accuracy"):
            out.append(self.value(f"{self.name}/{key}", np.mean([s[key] for s in per_model.values()])))
        for model, scores in per_model.items():
            for key in ("f1", "auc", "accuracy"):
                out.append(self.value(f"{self.name}/{model}/{key}", scores[key]))
        return out

    def _estimator(self, model: str, seed: int):
        if self.protocol == "dp2stage":
            if model == "xgboost":
                return xgboost.XGBClassifier(n_estimators=self.xgb_estimators, random_state=seed,
                                             n_jobs=self.threads, verbosity=0)
            return linear_model.LogisticRegression(solver="lbfgs", class_weight="balanced",
                                                   max_iter=50)
        if model == "xgboost":
            return xgboost.XGBClassifier(
                n_estimators=self.xgb_estimators or 100, random_state=seed, n_jobs=self.threads,
                tree_method="hist", verbosity=0,
            )
        return linear_model.LogisticRegression(max_iter=2000, random_state=seed)

    def _fit_predict(self, model: str, x, y, x_test, k: int, seed: int):
        """Class probabilities [n_test, k] and predicted classes; a single training class gives a
        constant predictor."""
        classes = np.unique(y)
        proba = np.zeros((len(x_test), k))
        if len(classes) == 1:
            proba[:, classes[0]] = 1.0
            return proba, np.full(len(x_test), classes[0])
        remap = np.searchsorted(classes, y)
        clf = self._estimator(model, seed)
        if self.protocol == "dp2stage":  # Pipeline([imputer, scaler, model]) in mlefficacy.py
            clf = pipeline.Pipeline([("imputer", SimpleImputer()),
                                     ("scaler", preprocessing.RobustScaler()), ("model", clf)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=50, as the reference
            clf.fit(x, remap)
            proba[:, classes] = clf.predict_proba(x_test)
            # the reference scores pipeline.predict; dparena-v1 took the argmax of the probabilities
            pred = classes[clf.predict(x_test)] if self.protocol == "dp2stage" else proba.argmax(1)
        return proba, pred
