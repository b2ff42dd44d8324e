"""DP-MERF: a generator trained to match a once-released, noisy class-conditional RFF mean embedding.

Harder, Adamczewski & Park, "DP-MERF: Differentially Private Mean Embeddings with Random
Features for Practical Privacy-Preserving Data Generation", AISTATS 2021 (sections 3-4).

Images are flattened and scaled to [0, 1]. The feature map is

    φ(x) = [α, √(1−α²) · rff(x)],   rff(x) = [cos(Wx), sin(Wx)] / √(D/2),   W ~ N(0, I / ℓ²)

so ‖φ(x)‖₂ = 1 for every x (the random Fourier features of a Gaussian kernel with length scale ℓ,
Rahimi & Recht 2007, are unit-norm by construction). The class-conditional mean embedding is
E = (1/N) Σᵢ φ(xᵢ) ⊗ onehot(yᵢ) with N the PUBLIC dataset size (``Task.public_size``, declared by
the dataset or the suite — never the private row count, which would make the noise scale itself
depend on the private data). Under dparena's neighbouring relation (add or remove one record)
one record moves E by φ(x) ⊗ onehot(y) / N, of Frobenius norm exactly 1/N: that is the
sensitivity (the paper's 2/n is the replace-one bound, twice the noise needed here). E is released
ONCE with the Gaussian mechanism, σ calibrated by :func:`dparena.privacy.gaussian_sigma` to the
run's (ε, δ), and booked in the ledger.

The constant coordinate α (``const_weight``) is a dparena addition: its row of the released E is
α · n_c / N, so the class proportions used to sample labels are read from the same release at no
extra cost (``const_weight=0`` gives the paper's uniform labels). The generator (an MLP from a
Gaussian code and a one-hot label to pixels, sigmoid output, as the paper's "FCCondGen") is then
trained by Adam to minimise ‖E_noisy − Ê_gen‖²_F, where Ê_gen is the same embedding of a generated
batch; this touches only the released E (post-processing). The default length scale is the
paper's MNIST setting (ℓ² = 127 for 784 pixels) scaled with the number of pixel values.
"""

from __future__ import annotations

import math

import numpy as np

from dparena.errors import ConfigError, SchemaError, require
from dparena.methods.base import Method, Task
from dparena.privacy import Ledger, gaussian_sigma
from dparena.torch_utils import one_thread, seeded
from dparena.types import Modality, Synthetic


def private_images(task: Task, method: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(images, labels, N, d) of the task's private split, conformed to its image schema: N is the
    public dataset size that divides the mean embedding, d the pixels per image (shared by
    dp-merf and dp-ntk)."""
    images, labels = task.schema.conform(task.private, task.private_labels, "private images")
    if len(images) < 1:
        raise SchemaError(f"{method}: the private split is empty")
    return images, labels, task.size(method), int(np.prod(task.schema.shape))


class DPMERF(Method):
    """DP-MERF (Harder et al., AISTATS 2021): noisy class-conditional RFF mean embedding + generator.

    One Gaussian release of the class-conditional mean embedding of unit-norm random Fourier
    features divided by the public N (add/remove sensitivity 1/N); an MLP generator is fit to it.
    Label proportions are read from a constant feature of the same release. Parameters include
    ``n_features``, ``length_scale2`` and ``steps`` (the module docstring has the derivation).
    """

    name = "dp-merf"
    modality = Modality.IMAGE
    description = "DP-MERF: one Gaussian release of a class-conditional RFF mean embedding, generator fit to it"
    extra = "image"
    released_info = frozenset({"class_proportions", "final_loss"})  # from the released E
    version = "2"  # 2: divisor = public N, add/remove sensitivity 1/N (was len(private), 2/n)

    def __init__(self, n_features: int = 1000, length_scale2: float | None = None,
                 const_weight: float = 0.5, code_dim: int = 5, hidden: tuple[int, ...] | list[int]
                 = (200, 500), steps: int = 300, batch_size: int = 200, lr: float = 0.01,
                 lr_decay: float = 0.5, batch_chunk: int = 2000):
        if not isinstance(n_features, int) or n_features < 2 or n_features % 2:
            raise ConfigError(f"dp-merf: n_features must be an even integer >= 2 (got {n_features!r})")
        if length_scale2 is not None and not length_scale2 > 0:
            raise ConfigError(f"dp-merf: length_scale2 must be > 0 (got {length_scale2!r})")
        if not 0.0 <= const_weight < 1.0:
            raise ConfigError(f"dp-merf: const_weight must be in [0, 1) (got {const_weight!r})")
        if steps < 1 or batch_size < 2 or code_dim < 1 or not hidden:
            raise ConfigError("dp-merf: steps >= 1, batch_size >= 2, code_dim >= 1 and at least "
                              "one hidden layer are required")
        self.n_features = n_features
        self.length_scale2 = length_scale2
        self.const_weight = const_weight
        self.code_dim = code_dim
        self.hidden = [int(h) for h in hidden]
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.lr_decay = lr_decay
        self.batch_chunk = batch_chunk

    # -- the feature map ---------------------------------------------------------------------
    def _features(self, torch, x, w):
        """φ(x) for rows of x (float, [0, 1]); unit L2 norm per row."""
        proj = x @ w.T
        rff = torch.cat([torch.cos(proj), torch.sin(proj)], dim=1) / math.sqrt(w.shape[0])
        alpha = self.const_weight
        const = torch.full((len(x), 1), alpha, dtype=x.dtype)
        return torch.cat([const, math.sqrt(1.0 - alpha * alpha) * rff], dim=1)

    def _embedding(self, torch, x, onehot, w):
        """Σ over rows of φ(x) ⊗ onehot, shape [1 + D, K] (a sum, not yet divided by n)."""
        out = torch.zeros(self.n_features + 1, onehot.shape[1], dtype=x.dtype)
        for s in range(0, len(x), self.batch_chunk):
            out += self._features(torch, x[s:s + self.batch_chunk], w).T @ onehot[s:s + self.batch_chunk]
        return out

    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        torch = require("torch", "image")
        schema = task.schema
        images, labels, size, d = private_images(task, self.name)
        n, k = len(images), schema.num_classes
        ell2 = self.length_scale2 if self.length_scale2 is not None else 127.0 * d / 784.0
        rng = task.rng
        w_np = rng.standard_normal((self.n_features // 2, d)) / math.sqrt(ell2)

        with one_thread(torch):
            w = torch.from_numpy(w_np).float()
            x = torch.from_numpy(images.reshape(n, d)).float() / 255.0
            onehot = torch.nn.functional.one_hot(torch.from_numpy(labels), k).float()
            # --- the one private release -------------------------------------------------------
            sensitivity = 1.0 / size
            sigma = gaussian_sigma(task.budget.epsilon, task.budget.delta, sensitivity)
            noise = task.noise.normal(0.0, sigma, (self.n_features + 1, k))
            released = self._embedding(torch, x, onehot, w) / size + torch.from_numpy(noise).float()
            ledger.gaussian("class-conditional RFF mean embedding (DP-MERF)", sigma=sigma,
                            sensitivity=sensitivity, n_features=self.n_features,
                            classes=k, length_scale2=ell2)
            del x, onehot  # nothing below reads private data
            # --- post-processing: class proportions and the generator --------------------------
            props = self._class_proportions(released[0].numpy().astype(np.float64))
            gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
            with seeded(torch, int(rng.integers(2**31))):
                net = self._generator(torch, k, d)
            p = torch.from_numpy(props).float()
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, self.steps // 3),
                                                    gamma=self.lr_decay)
            net.train()
            for _ in range(self.steps):
                y = torch.multinomial(p, self.batch_size, replacement=True, generator=gen)
                oh = torch.nn.functional.one_hot(y, k).float()
                z = torch.randn(self.batch_size, self.code_dim, generator=gen)
                fake = net(torch.cat([z, oh], dim=1))
                emb = self._features(torch, fake, w).T @ oh / self.batch_size
                loss = ((released - emb) ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            net.eval()
            y = torch.multinomial(p, task.n_samples, replacement=True, generator=gen)
            z = torch.randn(task.n_samples, self.code_dim, generator=gen)
            with torch.no_grad():
                out = net(torch.cat([z, torch.nn.functional.one_hot(y, k).float()], dim=1))
        pixels = np.clip(np.rint(out.numpy() * 255.0), 0, 255).astype(np.uint8)
        return Synthetic(pixels.reshape(task.n_samples, *schema.shape), labels=y.numpy().astype(np.int64),
                         info={"sigma": sigma, "class_proportions": props.round(4).tolist(),
                               "final_loss": float(loss.detach())})

    def _class_proportions(self, const_row: np.ndarray) -> np.ndarray:
        """Class proportions from the released constant row (α·n_c/N + noise); uniform if α = 0."""
        k = len(const_row)
        if self.const_weight == 0.0:
            return np.full(k, 1.0 / k)
        mass = np.clip(const_row / self.const_weight, 0.0, None)
        if mass.sum() <= 0:
            return np.full(k, 1.0 / k)
        return mass / mass.sum()

    def _generator(self, torch, k: int, d: int):
        nn = torch.nn
        layers, width = [], self.code_dim + k
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        layers += [nn.Linear(width, d), nn.Sigmoid()]
        return nn.Sequential(*layers)
