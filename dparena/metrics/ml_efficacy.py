"""Machine-learning efficacy: train on synthetic, test on real (TSTR).

XGBoost and logistic regression are trained on the synthetic table to predict the schema's target
and tested on the real eval table. Reported per model and averaged over models: F1 (binary: the
positive class is the eval set's minority class; multi-class: macro F1), ROC AUC (multi-class:
one-vs-rest macro) and accuracy. Features are encoded from the public schema only: numeric
columns scaled by their public bounds, categorical columns one-hot over the public categories
(unknown values encode as all zeros). A synthetic table whose target has a single class yields the
scores of that constant predictor (AUC 0.5), not an error.
"""

from __future__ import annotations

import numpy as np
import xgboost
from sklearn import linear_model
from sklearn import metrics as skm

from dparena.datasets.schema import Categorical, TableSchema
from dparena.errors import ConfigError, DparenaError
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import MetricValue, Modality, Synthetic

MODELS = ("xgboost", "logreg")


def encode_features(schema: TableSchema, frame) -> np.ndarray:
    """Public-schema encoding of every non-target column."""
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


class MLEfficacy(Metric):
    modality = Modality.TABULAR
    description = "Train-on-synthetic, test-on-real F1 / ROC AUC / accuracy (XGBoost, logistic regression)"
    extra = "tabular"
    lower, upper = 0.0, 1.0

    def __init__(self, models: tuple[str, ...] | list[str] = MODELS, xgb_estimators: int = 100,
                 threads: int = 2):
        unknown = [m for m in models if m not in MODELS]
        if unknown:
            raise ConfigError(f"ml-efficacy: unknown models {unknown}; choose from {list(MODELS)}")
        self.models = tuple(models)
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
        k = len(target.categories)
        y_eval = target.codes(list(real.data[target.name]))
        y_syn = target.codes(list(synthetic.data[target.name]))
        keep = y_syn < k
        if not keep.any():
            raise DparenaError("ml-efficacy: no synthetic row has a target in the public categories")
        x_syn = encode_features(schema, synthetic.data)[keep]
        y_syn = y_syn[keep]
        x_eval = encode_features(schema, real.data)
        eval_known = y_eval < k
        x_eval, y_eval = x_eval[eval_known], y_eval[eval_known]
        counts = np.bincount(y_eval, minlength=k)
        positive = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))

        per_model: dict[str, dict[str, float]] = {}
        for model in self.models:
            proba = self._fit_predict(model, x_syn, y_syn, x_eval, k, ctx.seed)
            pred = proba.argmax(axis=1)
            scores = {"accuracy": skm.accuracy_score(y_eval, pred)}
            if k == 2:
                scores["f1"] = skm.f1_score(y_eval == positive, pred == positive, zero_division=0)
                score = proba[:, positive]
                scores["auc"] = (skm.roc_auc_score(y_eval == positive, score)
                                 if len(np.unique(y_eval)) == 2 else float("nan"))
            else:
                scores["f1"] = skm.f1_score(y_eval, pred, average="macro", zero_division=0)
                present = np.unique(y_eval)
                p = proba[:, present]
                p = p / np.clip(p.sum(axis=1, keepdims=True), 1e-12, None)
                scores["auc"] = skm.roc_auc_score(y_eval, p, multi_class="ovr", labels=present)
            per_model[model] = scores

        out = []
        for key in ("f1", "auc", "accuracy"):
            out.append(self.value(f"{self.name}/{key}", np.mean([s[key] for s in per_model.values()])))
        for model, scores in per_model.items():
            for key in ("f1", "auc", "accuracy"):
                out.append(self.value(f"{self.name}/{model}/{key}", scores[key]))
        return out

    def _fit_predict(self, model: str, x, y, x_test, k: int, seed: int) -> np.ndarray:
        """Class probabilities [n_test, k]; a single training class gives a constant predictor."""
        classes = np.unique(y)
        proba = np.zeros((len(x_test), k))
        if len(classes) == 1:
            proba[:, classes[0]] = 1.0
            return proba
        remap = np.searchsorted(classes, y)
        if model == "xgboost":
            clf = xgboost.XGBClassifier(
                n_estimators=self.xgb_estimators, random_state=seed, n_jobs=self.threads,
                tree_method="hist", verbosity=0,
            )
        else:
            clf = linear_model.LogisticRegression(max_iter=2000, random_state=seed)
        clf.fit(x, remap)
        proba[:, classes] = clf.predict_proba(x_test)
        return proba
