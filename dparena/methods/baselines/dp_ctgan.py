"""DP-CTGAN: CTGAN's conditional generator trained against a discriminator that learns by DP-SGD.

Fang, Dhami & Kersting, "DP-CTGAN: Differentially Private Medical Data Generation Using CTGANs",
AIME 2022, on the CTGAN of Xu, Skoularidou, Cuesta-Infante & Veeramachaneni, "Modeling Tabular
Data using Conditional GAN", NeurIPS 2019. The reference whose architecture and defaults we follow
is smartnoise-synth's ``snsynth.pytorch.nn.dpctgan.DPCTGAN`` (1.0.x), the implementation the
DP-2Stage paper's table ran (its ``baselines/smartnoise.py``).

Why our own implementation: smartnoise-synth 1.0.8 requires ``opacus >= 0.14, < 0.15`` (its
Requires-Dist; it drives Opacus 0.14's ``PrivacyEngine.attach`` API), which cannot be installed
beside the project's Opacus 1.6, and its privacy analysis does not hold as written (below). This
module rebuilds the model on Opacus 1.6 and the project's accountants.

What is the same as the reference: the residual generator (Linear → BatchNorm → ReLU blocks whose
output is concatenated to their input, then a Linear to the row encoding), the discriminator
(Linear → LeakyReLU(0.2) → Dropout(0.5) blocks, a Linear to one logit, ``pac`` rows judged
together), the non-saturating cross-entropy GAN loss, Adam with β = (0.5, 0.9) and weight decay,
tanh for numeric outputs and Gumbel-softmax (τ = 0.2) for one-hot outputs, the conditional vector
(a discrete column drawn uniformly, one of its categories drawn by frequency, given to the
generator and shown to the discriminator beside the row), and the split of privacy: only the
discriminator touches private rows and only its gradients are clipped per example and noised; the
generator learns through the released discriminator, which is post-processing.

What differs, and why:

* **Transforms on the public schema.** Numeric columns are scaled to [−1, 1] over the schema's
  public bounds (the reference's ``MinMaxTransformer`` gets its bounds from the data, spending
  ``preprocessor_eps`` on them); ``modes = K > 1`` is a public stand-in for CTGAN's mode-specific
  normalisation: K equal-width modes over the public bounds, a one-hot mode and the position
  inside it in [−1, 1] (no Bayesian mixture is fitted to the private rows). Categorical columns
  are one-hot over the public category list; no category is discovered from the data.
* **Category frequencies are bought.** The reference reads them from the private rows without
  noise (its ``DataSampler``). Here one Gaussian release of every categorical column's counts
  (L2 sensitivity √(number of categorical columns)) is booked, its σ set so that alone it would
  be (``cond_share``·ε, δ); DP-SGD's σ is then calibrated so that both, composed in one
  accountant, stay within (ε, δ). ``conditional = false`` drops the conditional vector and
  the release.
* **Poisson sampling that the accountant assumes.** The reference draws a real row *matching* each
  conditional vector (a rare category's rows are drawn far more often than B/N) while accounting
  Poisson sampling at rate B/N. Here every step Poisson-samples the private rows at q = B/N (N the
  public dataset size, ``Task.public_size``); each sampled row's conditional vector is built from
  the row itself (one of its discrete columns drawn uniformly, its own category), and the fake
  rows' vectors are drawn from the DP frequencies, so real and fake vectors share one distribution.
* **One noised step per iteration.** The reference calls the DP optimiser twice (fake batch, then
  real batch), paying for two noised steps. Here real and fake groups go through one forward and
  backward pass; each group's gradient is clipped to C and one noise draw is added. The fake
  groups do not depend on the private rows beyond earlier releases, so the step is one
  Poisson-subsampled Gaussian mechanism. The sum is divided by the public expected number of
  groups (2B / pac).
* **pac under add/remove neighbours.** With pac = 1 one record changes one clipped gradient: L2
  sensitivity C. With pac > 1 the sampled rows are shuffled, cut into groups of pac and the
  remainder dropped; adding a record changes at most the group it joins (≤ 2C) and one group that
  completes at the end (≤ C), so the sensitivity is 3C (couple the shuffles by putting the new
  record at a uniform position and moving the row there to the end). The noise is scaled so the
  booked noise multiplier (noise / sensitivity) is the calibrated one: pac > 1 costs 3× the noise.
* **Accounting.** The reference checks Opacus 0.14's RDP ε once per epoch and stops when it is
  exceeded (the last epoch may overshoot). Here the noise multiplier is fixed before training from
  public quantities (:func:`dparena.privacy.dpsgd.plan_dp_sgd`, PRV by default, RDP with
  ``accountant = "rdp"``), the steps taken are booked, and the harness checks the total. A fixed
  ``noise_multiplier`` (the reference's ``sigma``, default 5 there) is accepted when its ε is
  within the budget (checked before any private row is read).
* **The conditional loss.** CTGAN adds the cross-entropy between the generated discrete column and
  the conditional vector to the generator loss; the reference has it commented out.
  ``cond_loss = true`` (our default) keeps CTGAN's term, ``false`` is the reference.

Reproducible under the run seed (one torch thread; initialisation, dropout, sampling, latent codes
and Gumbel noise from seeded generators; the DP noise from ``task.noise``).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dparena.datasets.schema import Categorical, TableSchema
from dparena.errors import ConfigError, SchemaError, require
from dparena.methods.base import Method, Task
from dparena.privacy import Ledger, gaussian_sigma
from dparena.privacy.noise import secure_torch_normal
from dparena.torch_utils import one_thread, seeded
from dparena.types import Modality, Synthetic

TAU = 0.2  # Gumbel-softmax temperature of CTGAN's output activation


@dataclass(frozen=True)
class _Block:
    """One span of the encoded row: ``alpha`` (a value in [−1, 1]) or ``onehot``."""

    column: int
    kind: str
    start: int
    width: int


class PublicTransform:
    """Rows <-> CTGAN's encoding, built from the public schema only.

    Numeric column: K equal-width modes over [lower, upper]; the position inside the mode in
    [−1, 1] (``alpha``), then the mode as a one-hot when K > 1 (K = 1 is min-max scaling).
    Categorical column: one-hot over the public categories.
    """

    def __init__(self, schema: TableSchema, modes: int = 1):
        self.schema, self.modes = schema, modes
        blocks, at = [], 0
        for j, col in enumerate(schema.columns):
            if isinstance(col, Categorical):
                blocks.append(_Block(j, "onehot", at, len(col.categories)))
                at += len(col.categories)
            else:
                blocks.append(_Block(j, "alpha", at, 1))
                at += 1
                if modes > 1:
                    blocks.append(_Block(j, "onehot", at, modes))
                    at += modes
        self.blocks, self.width = blocks, at
        self.categorical = [b for b in blocks
                            if isinstance(schema.columns[b.column], Categorical)]
        self.cond_width = sum(b.width for b in self.categorical)
        self.cond_offsets = np.cumsum([0] + [b.width for b in self.categorical])[:-1]

    def category_codes(self, frame: pd.DataFrame) -> np.ndarray:
        """[n, categorical columns] codes in the public lists (an unknown value -> 0: a DP method
        must not branch on what the private rows contain)."""
        out = []
        for b in self.categorical:
            col = self.schema.columns[b.column]
            codes = col.codes(frame[col.name].astype(str).str.strip().to_numpy())
            out.append(np.where(codes >= len(col.categories), 0, codes))
        return np.stack(out, axis=1).astype(np.int64) if out else np.zeros((len(frame), 0), np.int64)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        x = np.zeros((len(frame), self.width), dtype=np.float32)
        rows = np.arange(len(frame))
        for b in self.blocks:
            col = self.schema.columns[b.column]
            if isinstance(col, Categorical):
                codes = col.codes(frame[col.name].astype(str).str.strip().to_numpy())
                x[rows, b.start + np.where(codes >= b.width, 0, codes)] = 1.0
            elif b.kind == "alpha":
                v = np.clip(pd.to_numeric(frame[col.name], errors="coerce").fillna(col.lower)
                            .to_numpy(dtype=float), col.lower, col.upper)
                w = (col.upper - col.lower) / self.modes
                mode = np.clip(np.floor((v - col.lower) / w), 0, self.modes - 1)
                x[:, b.start] = np.clip(2.0 * (v - col.lower - mode * w) / w - 1.0, -1.0, 1.0)
                if self.modes > 1:
                    x[rows, b.start + 1 + mode.astype(np.int64)] = 1.0
        return x

    def decode(self, x: np.ndarray) -> pd.DataFrame:
        """Argmax of every one-hot; values inside their mode, rounded for integer columns and
        clipped to the public bounds."""
        cols: dict[str, np.ndarray] = {}
        by_col: dict[int, list[_Block]] = {}
        for b in self.blocks:
            by_col.setdefault(b.column, []).append(b)
        for j, col in enumerate(self.schema.columns):
            bs = by_col[j]
            if isinstance(col, Categorical):
                b = bs[0]
                idx = np.argmax(x[:, b.start:b.start + b.width], axis=1)
                cols[col.name] = np.asarray(col.categories, dtype=object)[idx]
                continue
            alpha = np.clip(x[:, bs[0].start], -1.0, 1.0)
            mode = (np.argmax(x[:, bs[1].start:bs[1].start + self.modes], axis=1)
                    if self.modes > 1 else np.zeros(len(x), dtype=np.int64))
            w = (col.upper - col.lower) / self.modes
            v = col.lower + (mode + (alpha + 1.0) / 2.0) * w
            if col.integer:
                v = np.round(v)
            cols[col.name] = np.clip(v, col.lower, col.upper).astype(float)
        return pd.DataFrame(cols)

    def activate(self, torch, raw, generator):
        """tanh on values, Gumbel-softmax (τ = 0.2, noise from ``generator``) on one-hots."""
        parts = []
        for b in self.blocks:
            chunk = raw[:, b.start:b.start + b.width]
            if b.kind == "alpha":
                parts.append(torch.tanh(chunk))
            else:
                u = torch.rand(chunk.shape, generator=generator).clamp_(1e-10, 1.0 - 1e-7)
                parts.append(torch.softmax((chunk - torch.log(-torch.log(u))) / TAU, dim=1))
        return torch.cat(parts, dim=1)


def _networks(torch, z_dim: int, cond: int, width: int, gen_dims: Sequence[int],
              disc_dims: Sequence[int], pac: int):
    """CTGAN's residual generator and pac-discriminator (one logit, no sigmoid)."""
    nn = torch.nn

    class Residual(nn.Module):
        def __init__(self, i: int, o: int):
            super().__init__()
            self.fc, self.bn = nn.Linear(i, o), nn.BatchNorm1d(o)

        def forward(self, x):
            return torch.cat([torch.relu(self.bn(self.fc(x))), x], dim=1)

    layers, dim = [], z_dim + cond
    for h in gen_dims:
        layers.append(Residual(dim, h))
        dim += h
    generator = nn.Sequential(*layers, nn.Linear(dim, width))
    layers, dim = [], (width + cond) * pac
    for h in disc_dims:
        layers += [nn.Linear(dim, h), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
        dim = h
    discriminator = nn.Sequential(*layers, nn.Linear(dim, 1))
    return generator, discriminator


def _positive_int(method: str, key: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{method}: {key} must be a positive integer (got {value!r})")


def _dims(method: str, key: str, value) -> list[int]:
    if not isinstance(value, list | tuple) or not value or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in value):
        raise ConfigError(f"{method}: {key} must be a non-empty list of positive layer widths "
                          f"(got {value!r})")
    return [int(h) for h in value]


class DPCTGAN(Method):
    """DP-CTGAN (Fang et al., AIME 2022): CTGAN with a DP-SGD discriminator, on Opacus 1.6.

    smartnoise-synth's architecture, rebuilt because it pins opacus < 0.15. Only the
    discriminator touches private rows: Poisson sampling at B/N, ghost clipping to C, one noise
    draw per step; the category frequencies of the conditional vector come from one booked
    Gaussian release; transforms use the public schema only (docs/protocols.md#baseline-dp-ctgan).

    Defaults are the reference's (smartnoise-synth ``DPCTGAN``) except ``epochs`` (its 300 run
    until ε is spent) and ``cond_loss``. ``epochs`` × ⌊N / ``batch_size``⌋ DP-SGD steps;
    ``max_grad_norm`` C; ``noise_multiplier`` None calibrates σ to the budget in ``accountant``
    ("prv" or "rdp"), a number is used as given when it fits the budget; ``pac`` rows per
    discriminator input; ``modes`` public equal-width modes per numeric column (1 = min-max);
    ``conditional`` with ``cond_share`` of ε for the category frequencies; ``cond_loss`` CTGAN's
    conditional cross-entropy in the generator loss.
    """

    name = "dp-ctgan"
    modality = Modality.TABULAR
    description = "DP-CTGAN: CTGAN generator trained through a DP-SGD (Opacus) discriminator"
    extra = "dpsgd"
    released_info = frozenset({"cond_frequencies"})  # the noisy category frequencies

    def __init__(self, epochs: int = 10, batch_size: int = 500, embedding_dim: int = 128,
                 generator_dim: Sequence[int] = (256, 256),
                 discriminator_dim: Sequence[int] = (256, 256), generator_lr: float = 2e-4,
                 discriminator_lr: float = 2e-4, generator_decay: float = 1e-6,
                 discriminator_decay: float = 1e-6, pac: int = 1, max_grad_norm: float = 1.0,
                 noise_multiplier: float | None = None, accountant: str = "prv", modes: int = 1,
                 conditional: bool = True, cond_share: float = 0.1, cond_loss: bool = True):
        from dparena.privacy.dpsgd import check_accountant

        m = self.name
        for key, value in (("epochs", epochs), ("batch_size", batch_size),
                           ("embedding_dim", embedding_dim), ("pac", pac), ("modes", modes)):
            _positive_int(m, key, value)
        if batch_size < 2:  # the generator's BatchNorm needs two rows
            raise ConfigError(f"{m}: batch_size must be at least 2 (got {batch_size})")
        if batch_size % pac:
            raise ConfigError(f"{m}: batch_size ({batch_size}) must be a multiple of pac ({pac})")
        self.generator_dim = _dims(m, "generator_dim", generator_dim)
        self.discriminator_dim = _dims(m, "discriminator_dim", discriminator_dim)
        for key, value in (("generator_lr", generator_lr), ("discriminator_lr", discriminator_lr),
                           ("max_grad_norm", max_grad_norm)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{m}: {key} must be a number > 0 (got {value!r})")
        for key, value in (("generator_decay", generator_decay),
                           ("discriminator_decay", discriminator_decay)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{m}: {key} must be a number >= 0 (got {value!r})")
        if noise_multiplier is not None and not (
                isinstance(noise_multiplier, int | float) and math.isfinite(noise_multiplier)
                and noise_multiplier > 0):
            raise ConfigError(f"{m}: noise_multiplier must be a number > 0, or omitted to "
                              f"calibrate it to the budget (got {noise_multiplier!r})")
        check_accountant(m, accountant)
        if not isinstance(conditional, bool) or not isinstance(cond_loss, bool):
            raise ConfigError(f"{m}: conditional and cond_loss must be true or false")
        if conditional and not 0.0 < cond_share < 1.0:
            raise ConfigError(f"{m}: cond_share must lie in (0, 1) (got {cond_share!r}); "
                              "conditional = false spends nothing on category frequencies")
        self.epochs, self.batch_size, self.embedding_dim = epochs, batch_size, embedding_dim
        self.generator_lr, self.discriminator_lr = float(generator_lr), float(discriminator_lr)
        self.generator_decay = float(generator_decay)
        self.discriminator_decay = float(discriminator_decay)
        self.pac, self.max_grad_norm = pac, float(max_grad_norm)
        self.noise_multiplier = None if noise_multiplier is None else float(noise_multiplier)
        self.accountant, self.modes = accountant, modes
        self.conditional, self.cond_share, self.cond_loss = conditional, float(cond_share), cond_loss

    # -- privacy plan (public quantities only) ----------------------------------------------
    def _plan(self, task: Task, n_categorical: int):
        """(DP-SGD plan, σ of the frequency release or None, its sensitivity)."""
        from dparena.privacy.accountants import sgm_epsilon
        from dparena.privacy.dpsgd import DPSGDPlan, plan_dp_sgd

        eps, delta = task.budget.epsilon, task.budget.delta
        if not task.budget.is_private:
            raise ConfigError(f"{self.name} needs a finite epsilon")
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"{self.name}: DP-SGD needs delta > 0 (got {delta})")
        size = task.size(self.name)
        use_hist = self.conditional and n_categorical > 0
        sens_h = math.sqrt(n_categorical)
        sigma_h = gaussian_sigma(self.cond_share * eps, delta, sens_h) if use_hist else None
        others = [(sigma_h / sens_h, 1.0, 1)] if use_hist else []
        if self.noise_multiplier is None:
            plan = plan_dp_sgd(epsilon=eps, delta=delta, public_size=size,
                               batch_size=self.batch_size, epochs=self.epochs,
                               accountant=self.accountant, others=others)
        else:
            q = min(1.0, self.batch_size / size)
            steps = self.epochs * int(1.0 / q)
            plan = DPSGDPlan(self.noise_multiplier, q, steps, self.accountant, q * size)
            spent = sgm_epsilon([(plan.noise_multiplier, q, steps), *others], delta,
                                self.accountant)
            if spent > eps * (1.0 - 1e-6):
                raise ConfigError(
                    f"{self.name}: noise_multiplier = {self.noise_multiplier:g} for {steps} steps "
                    f"at q = {q:.4g} spends ε = {spent:.3g} > {eps:g}; raise it, lower epochs, "
                    "or omit it to calibrate to the budget")
        return plan, sigma_h, sens_h

    # -- the run -----------------------------------------------------------------------------
    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        torch = require("torch", "dpsgd")
        require("opacus", "dpsgd")
        from dparena.privacy.dpsgd import book_dp_sgd

        schema: TableSchema = task.schema
        transform = PublicTransform(schema, self.modes)
        n_cat = len(transform.categorical) if self.conditional else 0
        plan, sigma_h, sens_h = self._plan(task, n_cat)  # before any private row is read
        if len(task.private) < 1:
            raise SchemaError(f"{self.name}: the private split is empty")
        rng = task.rng
        seeds = [int(s) for s in rng.integers(2**62, size=6)]
        info: dict = {"accountant": plan.accountant, "noise_multiplier": plan.noise_multiplier,
                      "sample_rate": plan.sample_rate, "planned_steps": plan.steps,
                      "pac": self.pac, "modes": self.modes}

        # --- private reads: the encoding, and (conditional) one Gaussian frequency release ---
        real = transform.encode(task.private)
        codes = transform.category_codes(task.private) if n_cat else None
        freqs = None
        if n_cat:
            noisy = []
            for j, b in enumerate(transform.categorical):
                counts = np.bincount(codes[:, j], minlength=b.width).astype(float)
                noisy.append(counts + task.noise.normal(0.0, sigma_h, b.width))
            ledger.gaussian(f"category counts of {n_cat} columns (DP-CTGAN conditional vector)",
                            sigma=sigma_h, sensitivity=sens_h, columns=n_cat)
            freqs = [_frequencies(c) for c in noisy]
            info["sigma_counts"] = sigma_h
            info["cond_frequencies"] = {schema.columns[b.column].name: f.round(4).tolist()
                                        for b, f in zip(transform.categorical, freqs, strict=True)}

        with one_thread(torch), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus' secure-RNG advice and hook notices
            started = time.monotonic()
            steps, gen = self._train(torch, task, transform, real, codes, freqs, plan, seeds)
            info["train_s"] = time.monotonic() - started
            book_dp_sgd(ledger, plan, steps, "DP-SGD on the DP-CTGAN discriminator",
                        self.max_grad_norm)
            del real, codes  # nothing below reads private data
            out = self._sample(torch, gen, transform, freqs, task.n_samples, seeds[5])
        info["steps"] = steps
        return Synthetic(transform.decode(out), info=info)

    def _train(self, torch, task, transform, real, codes, freqs, plan, seeds):
        from opacus.grad_sample import GradSampleModuleFastGradientClipping
        from opacus.optimizers import DPOptimizerFastGradientClipping
        from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

        secure = getattr(task.noise, "secure", False)
        cond_w = transform.cond_width if freqs is not None else 0
        with seeded(torch, seeds[0]):
            gen, disc = _networks(torch, self.embedding_dim, cond_w, transform.width,
                                  self.generator_dim, self.discriminator_dim, self.pac)
        # ghost clipping: per-example gradient norms without materialising per-example gradients
        # (for a Linear layer ‖g aᵀ‖ = ‖g‖‖a‖), then a second backward pass weighted by the
        # clipping coefficients — the same clipped sum as per-example clipping, much cheaper
        disc = GradSampleModuleFastGradientClipping(disc, loss_reduction="mean",
                                                    max_grad_norm=self.max_grad_norm,
                                                    use_ghost_clipping=True)
        opt_g = torch.optim.Adam(gen.parameters(), lr=self.generator_lr, betas=(0.5, 0.9),
                                 weight_decay=self.generator_decay)
        # the booked noise multiplier is noise / sensitivity; with pac > 1 the sensitivity is 3C
        factor = 1.0 if self.pac == 1 else 3.0
        opt_d = DPOptimizerFastGradientClipping(
            torch.optim.Adam(disc.parameters(), lr=self.discriminator_lr, betas=(0.5, 0.9),
                             weight_decay=self.discriminator_decay),
            noise_multiplier=plan.noise_multiplier * factor, max_grad_norm=self.max_grad_norm,
            expected_batch_size=2 * self.batch_size // self.pac,
            generator=None if secure else torch.Generator().manual_seed(seeds[1]))
        sampler = task.noise.torch_generator(seeds[2])  # Poisson sampling, shuffles, columns
        latent = torch.Generator().manual_seed(seeds[3])  # codes, Gumbel noise, fake conditions
        x_real = torch.from_numpy(real)
        codes_t = torch.from_numpy(codes) if codes is not None else None
        offsets = torch.from_numpy(transform.cond_offsets.astype(np.int64))
        probs = _padded(torch, freqs) if freqs is not None else None
        n, pac, batch = len(real), self.pac, self.batch_size
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        gen.train()
        disc.train()
        taken = 0
        with seeded(torch, seeds[4]), _secure_dp_noise(secure):  # seeded: dropout's RNG
            for _ in range(plan.steps):
                # discriminator: one DP-SGD step on real groups (Poisson at q) and fake groups
                picked = torch.nonzero(torch.rand(n, generator=sampler) < plan.sample_rate)[:, 0]
                picked = picked[torch.randperm(len(picked), generator=sampler)]
                picked = picked[: len(picked) // pac * pac]
                rows = x_real[picked]
                if cond_w:
                    col = torch.randint(codes_t.shape[1], (len(picked),), generator=sampler)
                    cond = _one_hot(torch, offsets[col] + codes_t[picked, col], cond_w)
                    rows = torch.cat([rows, cond], dim=1)
                with torch.no_grad():
                    fake = self._fake(torch, gen, transform, probs, offsets, cond_w, batch,
                                      latent)[0]
                groups = torch.cat([rows.reshape(-1, pac * rows.shape[1]),
                                    fake.reshape(-1, pac * fake.shape[1])], dim=0)
                target = torch.cat([torch.ones(len(picked) // pac), torch.zeros(batch // pac)])
                opt_d.zero_grad(set_to_none=True)
                per_group = bce(disc(groups)[:, 0], target, reduction="none")
                DPTensorFastGradientClipping(disc, opt_d, per_group, "mean").backward()
                opt_d.step()
                taken += 1
                # generator: through the released discriminator (post-processing)
                disc.disable_hooks()
                for p in disc.parameters():
                    p.requires_grad_(False)
                fake, raw, cond_cols, cond_cats = self._fake(
                    torch, gen, transform, probs, offsets, cond_w, batch, latent)
                loss_g = bce(disc(fake.reshape(-1, pac * fake.shape[1]))[:, 0],
                             torch.ones(batch // pac))
                if cond_w and self.cond_loss:
                    loss_g = loss_g + _cond_loss(torch, transform, raw, cond_cols, cond_cats)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                for p in disc.parameters():
                    p.requires_grad_(True)
                disc.enable_hooks()
        disc.remove_hooks()
        return taken, gen

    def _fake(self, torch, gen, transform, probs, offsets, cond_w, batch, latent):
        """A batch of activated generator rows (with their conditional vector appended)."""
        z = torch.randn(batch, self.embedding_dim, generator=latent)
        cols = cats = None
        if cond_w:
            cols = torch.randint(probs.shape[0], (batch,), generator=latent)
            cats = torch.multinomial(probs[cols], 1, generator=latent)[:, 0]
            cond = _one_hot(torch, offsets[cols] + cats, cond_w)
            z = torch.cat([z, cond], dim=1)
        raw = gen(z)
        act = transform.activate(torch, raw, latent)
        if cond_w:
            act = torch.cat([act, cond], dim=1)
        return act, raw, cols, cats

    def _sample(self, torch, gen, transform, freqs, n: int, seed: int) -> np.ndarray:
        latent = torch.Generator().manual_seed(seed)
        cond_w = transform.cond_width if freqs is not None else 0
        probs = _padded(torch, freqs) if freqs is not None else None
        offsets = torch.from_numpy(transform.cond_offsets.astype(np.int64))
        gen.eval()
        out = []
        with torch.no_grad():
            for start in range(0, n, self.batch_size):
                m = min(self.batch_size, n - start)
                act = self._fake(torch, gen, transform, probs, offsets, cond_w, m, latent)[0]
                out.append(act[:, :transform.width].numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, transform.width), np.float32)


@contextlib.contextmanager
def _secure_dp_noise(secure: bool):
    """With a secure noise source, the discriminator's DP-SGD noise comes from OS entropy: the
    fast-gradient-clipping optimiser looks ``_generate_noise`` up in its own module, which is
    where it is replaced for the duration (otherwise, with no generator, it would draw from
    torch's global RNG, which the training loop seeds)."""
    if not secure:
        yield
        return
    from opacus.optimizers import optimizer_fast_gradient_clipping as fgc

    saved = fgc._generate_noise
    fgc._generate_noise = secure_torch_normal
    try:
        yield
    finally:
        fgc._generate_noise = saved


def _frequencies(noisy: np.ndarray) -> np.ndarray:
    """Noisy counts -> a distribution (negative counts to 0; uniform when nothing is left)."""
    p = np.clip(noisy, 0.0, None)
    return p / p.sum() if p.sum() > 0 else np.full(len(p), 1.0 / len(p))


def _padded(torch, freqs):
    """[columns, max categories] category probabilities, zero-padded."""
    k = max(len(f) for f in freqs)
    out = np.zeros((len(freqs), k))
    for j, f in enumerate(freqs):
        out[j, :len(f)] = f
    return torch.from_numpy(out)


def _one_hot(torch, index, width: int):
    out = torch.zeros(len(index), width)
    out[torch.arange(len(index)), index] = 1.0
    return out


def _cond_loss(torch, transform, raw, cols, cats):
    """CTGAN's conditional loss: cross-entropy of the generated logits of the conditioned column
    against the conditioned category, averaged over the batch."""
    total = raw.new_zeros(())
    for j, b in enumerate(transform.categorical):
        rows = torch.nonzero(cols == j)[:, 0]
        if len(rows):
            total = total + torch.nn.functional.cross_entropy(
                raw[rows, b.start:b.start + b.width], cats[rows], reduction="sum")
    return total / len(raw)
