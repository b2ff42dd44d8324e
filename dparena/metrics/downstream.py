"""Downstream accuracy: a small CNN trained on labelled synthetic images, tested on the real eval split.

The classification-accuracy protocol of the DP image-synthesis literature (e.g. DP-MERF, Harder et
al., AISTATS 2021, Table 2; DPImageBench, Chen et al., 2025): train on synthetic, test on real.
The epoch is selected on a held-out part of the SYNTHETIC set, never on the real eval images.
"""

from __future__ import annotations

import numpy as np

from dparena.errors import ConfigError, DparenaError, require
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.torch_utils import one_thread, seeded
from dparena.types import MetricValue, Modality, Synthetic


def small_cnn(torch, channels: int, num_classes: int, width: int = 16):
    """conv3×3(width) → ReLU → maxpool2 → conv3×3(2·width) → ReLU → avgpool to 3×3 → linear."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(3),
        nn.Flatten(), nn.Linear(2 * width * 9, num_classes),
    )


def _to_tensor(torch, images: np.ndarray):
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2))).float() / 255.0


def train_and_test(train_x, train_y, test_x, test_y, num_classes: int, seed: int,
                   epochs: int = 15, batch_size: int = 64, lr: float = 3e-3,
                   holdout: float = 0.2, width: int = 16, min_steps: int = 300) -> dict[str, float]:
    """Train the small CNN on (train_x, train_y), pick the epoch by held-out accuracy, test.

    Runs ``epochs`` epochs, more when needed to make at least ``min_steps`` optimiser steps (small
    synthetic sets would otherwise stop after a few dozen steps).

    Returns the test accuracy, the held-out (synthetic) accuracy of the chosen epoch and the
    chosen epoch. One torch thread, all randomness from generators seeded by ``seed``.
    """
    torch = require("torch", "image")
    y = np.asarray(train_y, dtype=np.int64)
    rng = np.random.default_rng([seed, 31])
    order = rng.permutation(len(y))
    n_hold = int(round(holdout * len(y))) if len(y) >= 10 else 0
    hold, fit = order[:n_hold], order[n_hold:]
    channels = np.asarray(train_x).shape[-1] if np.asarray(train_x).ndim == 4 else 1
    with one_thread(torch):
        with seeded(torch, int(rng.integers(2**31))):  # parameter init only
            model = small_cnn(torch, channels, num_classes, width)
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        xs, ys = _to_tensor(torch, np.asarray(train_x)[fit]), torch.from_numpy(y[fit])
        xh, yh = _to_tensor(torch, np.asarray(train_x)[hold]), torch.from_numpy(y[hold])
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()

        def accuracy(x, t) -> float:
            model.eval()
            with torch.no_grad():
                pred = torch.cat([model(x[i:i + 512]).argmax(1) for i in range(0, len(x), 512)])
            model.train()
            return float((pred == t).float().mean())

        best = (-1.0, 0, {k: v.clone() for k, v in model.state_dict().items()})
        per_epoch = -(-len(xs) // batch_size)
        for epoch in range(1, max(epochs, -(-min_steps // per_epoch)) + 1):
            perm = torch.randperm(len(xs), generator=gen)
            for i in range(0, len(xs), batch_size):
                idx = perm[i:i + batch_size]
                opt.zero_grad()
                loss_fn(model(xs[idx]), ys[idx]).backward()
                opt.step()
            score = accuracy(xh, yh) if n_hold else float(epoch)  # no hold-out: last epoch
            if score > best[0]:
                best = (score, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        model.load_state_dict(best[2])
        test = accuracy(_to_tensor(torch, test_x), torch.from_numpy(np.asarray(test_y, np.int64)))
    return {"accuracy": test, "holdout_accuracy": best[0] if n_hold else float("nan"),
            "epoch": float(best[1])}


class DownstreamAccuracy(Metric):
    """Accuracy on the real eval split of a small CNN trained on the synthetic labelled images.

    Train-on-synthetic / test-on-real classification accuracy (as in DP-MERF, Harder et al.,
    AISTATS 2021, and DPImageBench). A 2-conv CNN trained with Adam for ``epochs`` epochs (at
    least ``min_steps`` steps); the
    epoch kept is the one with the best accuracy on a held-out ``holdout`` share of the synthetic
    set (the real eval split is only used for the final test). A synthetic set with a single class
    yields the accuracy of that constant classifier. Deterministic under ``ctx.seed``.

    For texts: logistic regression on the sentence embeddings of ``embedding-fid``, trained on the
    synthetic texts and tested on the real eval texts (Aug-PE, Xie et al., ICML 2024, Sec. 5).
    """

    name = "downstream-accuracy"
    modality = (Modality.IMAGE, Modality.TEXT)
    description = "Train-on-synthetic, test-on-real accuracy (images: small CNN; texts: embeddings + LR)"
    extra = ""

    def __init__(self, epochs: int = 15, batch_size: int = 64, lr: float = 3e-3,
                 holdout: float = 0.2, width: int = 16, min_steps: int = 300):
        if not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"downstream-accuracy: epochs must be an integer >= 1 (got {epochs!r})")
        if not 0.0 <= holdout < 1.0:
            raise ConfigError(f"downstream-accuracy: holdout must be in [0, 1) (got {holdout!r})")
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.holdout, self.width, self.min_steps = holdout, width, int(min_steps)

    def headline(self) -> list[str]:
        return [self.name]

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        if getattr(real.schema, "kind", "") == "text":
            return [self.value(self.name, text_accuracy(synthetic, real, ctx))]
        if synthetic.labels is None:
            raise DparenaError("downstream-accuracy needs labelled synthetic images; the method "
                               "returned none (give Synthetic(labels=...))")
        schema = real.schema
        x, y = schema.conform(synthetic.data, synthetic.labels, "synthetic images")
        ex, ey = schema.conform(real.data, real.labels, "eval images")
        if len(x) < 2:
            raise DparenaError("downstream-accuracy needs at least 2 synthetic images")
        out = train_and_test(x, y, ex, ey, schema.num_classes, ctx.seed, self.epochs,
                             self.batch_size, self.lr, self.holdout, self.width, self.min_steps)
        return [self.value(self.name, out["accuracy"])]


def text_accuracy(synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> float:
    """Logistic regression on sentence embeddings: trained on synthetic, accuracy on real eval."""
    from dparena.metrics.text import eval_text_features, synthetic_text_features

    linear = require("sklearn.linear_model", "tabular")
    schema = real.schema
    texts, y = schema.conform(synthetic.data, synthetic.labels, "synthetic texts")
    _, ey = schema.conform(real.data, real.labels, "eval texts")
    x, ex = synthetic_text_features(synthetic, ctx), eval_text_features(real, ctx)
    classes = np.unique(y)
    if len(classes) == 1:  # a constant classifier
        return float(np.mean(ey == classes[0]))
    model = linear.LogisticRegression(max_iter=1000, random_state=ctx.seed)
    model.fit(x, y)
    return float(np.mean(model.predict(ex) == ey))
