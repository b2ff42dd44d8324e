"""DP-NTK: a generator trained to match a once-released, noisy mean embedding of NTK features.

Yang, Adamczewski, Sutherland, Li & Park, "Differentially Private Neural Tangent Kernels for
Privacy-Preserving Data Generation", JAIR 2024 (arXiv 2303.01687), the method DPImageBench ranks
as DP-NTK. Reference code: the authors' ``Justinyangjy/DP-NTK`` (``MNIST/dp_ntk_mean_emb1.py``,
``MNIST/dp_ntk_gen.py``, ``MNIST/models/ntk.py``) and DPImageBench's ``models/dp_ntk.py`` with
``configs/DP-NTK/mnist_28_eps*.yaml``; the defaults here are theirs for MNIST.

The feature map is the empirical neural tangent kernel's: for a fixed, randomly initialised
one-hidden-layer network f(x) = W₂ LayerNorm(ReLU(W₁x + b₁)) + b₂ (width ``ntk_width``, K outputs,
LayerNorm without affine parameters, as the reference's ``NTK``), φ(x) = ∇_θ Σₖ fₖ(x), the gradient
of the summed outputs with respect to all parameters, normalised to unit L2 norm; x is the image
flattened and scaled to [0, 1]. The class-conditional mean embedding E = (1/N) Σᵢ φ(xᵢ)/‖φ(xᵢ)‖ ⊗
onehot(yᵢ), with N the PUBLIC dataset size (``Task.public_size``), is released ONCE with the Gaussian
mechanism and booked. One record moves E by a unit vector / N: under dparena's add/remove
neighbours the L2 sensitivity is 1/N (the reference's 2/N is the replace-one bound).

We compute φ in closed form rather than by one autograd call per image (the reference's loop):
with a = W₁x + b₁, r = ReLU(a), h = LayerNorm(r) (biased variance, ε = 1e-5, s = √(var + ε)),
w = W₂ᵀ1, the gradient is ∂/∂b₂ = 1, ∂/∂W₂ = 1 hᵀ, g = ∂/∂a = 1[a > 0] ⊙ (w − mean(w) −
h·mean(w ⊙ h)) / s, ∂/∂b₁ = g, ∂/∂W₁ = g xᵀ. The K rows of ∂/∂W₂ (and the K entries of ∂/∂b₂) are
identical, so we release them once, scaled by √K: the vector ψ(x) = [g xᵀ, g, √K h, √K] has the
same norm as φ(x), and the reference's release is ψ's with its K copies — averaging those copies
gives exactly ψ's noise, and the generator's loss differs from the reference's only by a constant.

The generator is the reference's ``ConvCondGen`` (Gaussian code of ``code_dim`` and a one-hot label
→ Linear ``hidden`` → BatchNorm → ReLU → Linear → BatchNorm → 2× bilinear upsampling → 5×5 conv →
ReLU → 2× upsampling → 5×5 conv → sigmoid; sizes not divisible by 4 are cropped), trained by Adam to
minimise ‖E_noisy − Ê_gen‖², where Ê_gen is the same embedding of a generated batch divided by the
batch size (post-processing: only the released E is read). Labels of the generated batches and of
the output are balanced over the classes, as the reference's (or drawn from the schema's public
class proportions when it declares them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dparena.errors import ConfigError, require
from dparena.methods.base import Method, Task
from dparena.methods.baselines.dp_merf import private_images
from dparena.privacy import Ledger, gaussian_sigma
from dparena.torch_utils import one_thread, seeded
from dparena.types import Modality, Synthetic

LN_EPS = 1e-5  # torch.nn.LayerNorm's default, as the reference's NTK


def ntk_features(torch, x, w1, b1, w2):
    """Unit-norm ψ(x) (the NTK gradient features, ∂/∂W₂ and ∂/∂b₂ kept once, scaled by √K) for
    rows of x; returns (the W₁ factor g/‖ψ‖ [n, m], the rest [n, m + m + 1]) so that the W₁
    block of the embedding is factorᵀ x without forming per-row outer products."""
    k = w2.shape[0]
    a = x @ w1.T + b1
    r = torch.relu(a)
    mu = r.mean(dim=1, keepdim=True)
    var = ((r - mu) ** 2).mean(dim=1, keepdim=True)
    s = torch.sqrt(var + LN_EPS)
    h = (r - mu) / s
    w = w2.sum(dim=0)  # W₂ᵀ1
    g = (a > 0).to(x.dtype) * (w - w.mean() - h * (h * w).mean(dim=1, keepdim=True)) / s
    norm2 = k * (1.0 + (h * h).sum(dim=1)) + (g * g).sum(dim=1) * (1.0 + (x * x).sum(dim=1))
    inv = torch.rsqrt(norm2)[:, None]
    root_k = math.sqrt(k)
    rest = torch.cat([g, root_k * h, torch.full((len(x), 1), root_k, dtype=x.dtype)], dim=1)
    return g * inv, rest * inv


def ntk_embedding(torch, x, labels, k: int, w1, b1, w2, chunk: int = 2000):
    """Σ over rows of ψ(x)/‖ψ(x)‖ ⊗ onehot(label): (W₁ block [K, m, d], the rest [K, 2m + 1]);
    a sum, not yet divided. Each class's W₁ block is one product factorᵀ x over its rows."""
    m, d = w1.shape
    big = [x.new_zeros((m, d)) for _ in range(k)]
    rest = x.new_zeros((k, 2 * m + 1))
    for s in range(0, len(x), chunk):
        xs, ys = x[s:s + chunk], labels[s:s + chunk]
        factor, other = ntk_features(torch, xs, w1, b1, w2)
        for c in range(k):
            rows = torch.nonzero(ys == c)[:, 0]
            if len(rows):
                big[c] = big[c] + factor[rows].T @ xs[rows]
        rest = rest.index_add(0, ys, other)
    return torch.stack(big), rest



def matching_loss(torch, big, rest, big_sq, x, labels, k: int, w1, b1, w2):
    """‖E − Ê‖² for the released E = (big, rest) and Ê the embedding of the rows ``x`` divided
    by their number B, without forming Ê's [K, m, d] block: with Fc, Xc the W₁ factors and
    inputs of class c, ⟨E_c, Fcᵀ Xc⟩ = Σ (Xc E_cᵀ) ⊙ Fc and ‖Fcᵀ Xc‖² = Σ (Fc Fcᵀ) ⊙ (Xc Xcᵀ);
    ``big_sq`` is ‖big‖² (a constant)."""
    n = len(x)
    factor, other = ntk_features(torch, x, w1, b1, w2)
    loss = ((rest - rest.new_zeros(rest.shape).index_add(0, labels, other) / n) ** 2).sum()
    loss = loss + big_sq
    for c in range(k):
        rows = torch.nonzero(labels == c)[:, 0]
        if len(rows):
            fc, xc = factor[rows], x[rows]
            cross = ((xc @ big[c].T) * fc).sum()
            own = ((fc @ fc.T) * (xc @ xc.T)).sum()
            loss = loss - 2.0 * cross / n + own / (n * n)
    return loss


class DPNTK(Method):
    """DP-NTK (Yang et al., 2023): noisy class-conditional NTK mean embedding + generator.

    One Gaussian release of the class-conditional mean of unit-norm NTK features (the gradient of
    a random one-hidden-layer network of width ``ntk_width``, computed in closed form) divided by
    the public N (add/remove sensitivity 1/N); the authors' conv generator is fit to it by Adam
    (``steps`` batches of ``batch_size``, ``lr``, ``lr_decay`` every ``decay_every`` steps).
    Defaults are the authors' and DPImageBench's MNIST setting; see docs/protocols.md#dp-ntk.
    """

    name = "dp-ntk"
    modality = Modality.IMAGE
    description = "DP-NTK: one Gaussian release of a class-conditional NTK-feature mean embedding, generator fit to it"
    extra = "image"
    released_info = frozenset({"final_loss"})  # a function of the released embedding

    def __init__(self, ntk_width: int = 800, code_dim: int = 5, hidden: int = 200,
                 channels: Sequence[int] = (16, 8), kernel_sizes: Sequence[int] = (5, 5),
                 steps: int = 2000, batch_size: int = 5000, lr: float = 1e-2,
                 lr_decay: float = 0.9, decay_every: int = 1500, batch_chunk: int = 2000):
        for key, value in (("ntk_width", ntk_width), ("code_dim", code_dim), ("hidden", hidden),
                           ("steps", steps), ("decay_every", decay_every),
                           ("batch_chunk", batch_chunk)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"dp-ntk: {key} must be a positive integer (got {value!r})")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 2:
            raise ConfigError(f"dp-ntk: batch_size must be an integer >= 2 (got {batch_size!r})")
        pairs = (("channels", channels), ("kernel_sizes", kernel_sizes))
        for key, value in pairs:
            if (not isinstance(value, list | tuple) or len(value) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                               for v in value)):
                raise ConfigError(f"dp-ntk: {key} must be two positive integers (got {value!r})")
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ConfigError(f"dp-ntk: kernel_sizes must be odd (got {list(kernel_sizes)})")
        if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
            raise ConfigError(f"dp-ntk: lr must be a number > 0 (got {lr!r})")
        if not (isinstance(lr_decay, int | float) and 0 < lr_decay <= 1):
            raise ConfigError(f"dp-ntk: lr_decay must lie in (0, 1] (got {lr_decay!r})")
        self.ntk_width, self.code_dim, self.hidden = ntk_width, code_dim, hidden
        self.channels, self.kernel_sizes = [int(c) for c in channels], [int(k) for k in kernel_sizes]
        self.steps, self.batch_size, self.lr = steps, batch_size, float(lr)
        self.lr_decay, self.decay_every, self.batch_chunk = float(lr_decay), decay_every, batch_chunk

    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        torch = require("torch", "image")
        schema = task.schema
        if not task.budget.is_private:
            raise ConfigError("dp-ntk needs a finite epsilon")
        images, labels, size, d = private_images(task, self.name)
        n, k = len(images), schema.num_classes
        rng = task.rng
        seeds = [int(s) for s in rng.integers(2**62, size=3)]
        prior = (np.asarray(schema.class_proportions, dtype=float)
                 if schema.class_proportions is not None else None)
        with one_thread(torch):
            with seeded(torch, seeds[0]):  # the NTK network: random, public, as the reference's
                fc1, fc2 = torch.nn.Linear(d, self.ntk_width), torch.nn.Linear(self.ntk_width, k)
            w1, b1, w2 = fc1.weight.detach(), fc1.bias.detach(), fc2.weight.detach()
            # --- the one private release ------------------------------------------------------
            x = torch.from_numpy(images.reshape(n, d)).float() / 255.0
            y_priv = torch.from_numpy(labels)
            with torch.no_grad():
                big, rest = ntk_embedding(torch, x, y_priv, k, w1, b1, w2, self.batch_chunk)
            sensitivity = 1.0 / size
            sigma = gaussian_sigma(task.budget.epsilon, task.budget.delta, sensitivity)
            big = big / size + torch.from_numpy(
                task.noise.normal(0.0, sigma, tuple(big.shape))).float()
            rest = rest / size + torch.from_numpy(
                task.noise.normal(0.0, sigma, tuple(rest.shape))).float()
            dim = big[0].numel() + rest.shape[1]
            ledger.gaussian("class-conditional NTK-feature mean embedding (DP-NTK)", sigma=sigma,
                            sensitivity=sensitivity, ntk_width=self.ntk_width, classes=k,
                            feature_dim=dim)
            del x, y_priv, images, labels  # nothing below reads private data
            # --- post-processing: the generator ----------------------------------------------
            gen = torch.Generator().manual_seed(seeds[1])
            with seeded(torch, seeds[2]):
                net = _ConvCondGen(torch, self.code_dim, self.hidden, k, self.channels,
                                   self.kernel_sizes, schema.shape)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr)
            big_sq = (big ** 2).sum()
            net.train()
            loss = torch.zeros(())
            for step in range(self.steps):
                y = _labels(torch, self.batch_size, k, prior, gen)
                fake = net(torch.randn(self.batch_size, self.code_dim, generator=gen), y, k)
                loss = matching_loss(torch, big, rest, big_sq, fake, y, k, w1, b1, w2)
                opt.zero_grad()
                loss.backward()
                opt.step()
                if (step + 1) % self.decay_every == 0:
                    for group in opt.param_groups:
                        group["lr"] *= self.lr_decay
            net.eval()
            y = _labels(torch, task.n_samples, k, prior, gen)
            with torch.no_grad():
                out = net(torch.randn(task.n_samples, self.code_dim, generator=gen), y, k)
        pixels = np.clip(np.rint(out.numpy() * 255.0), 0, 255).astype(np.uint8)
        return Synthetic(pixels.reshape(task.n_samples, *schema.shape),
                         labels=y.numpy().astype(np.int64),
                         info={"sigma": sigma, "feature_dim": int(dim),
                               "final_loss": float(loss.detach())})


def _labels(torch, n: int, k: int, prior, gen):
    """Balanced labels in a random order (the reference's uniform labels), or drawn from the
    public class proportions."""
    if prior is not None:
        return torch.multinomial(torch.from_numpy(prior).float(), n, replacement=True,
                                 generator=gen)
    return (torch.arange(n) % k)[torch.randperm(n, generator=gen)]


class _ConvCondGen:
    """The reference's ConvCondGen for an image of ``shape`` (H, W, C): output rows are images
    flattened in HWC order with values in [0, 1]."""

    def __init__(self, torch, code_dim, hidden, k, channels, kernel_sizes, shape):
        nn = torch.nn
        self.torch, self.shape = torch, shape
        h, w, c = shape
        self.hw = (math.ceil(h / 4), math.ceil(w / 4))
        self.c0 = channels[0]
        self.fc = nn.Sequential(nn.Linear(code_dim + k, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                nn.Linear(hidden, channels[0] * self.hw[0] * self.hw[1]),
                                nn.BatchNorm1d(channels[0] * self.hw[0] * self.hw[1]))
        self.conv = nn.Sequential(
            nn.UpsamplingBilinear2d(scale_factor=2),
            nn.Conv2d(channels[0], channels[1], kernel_sizes[0], padding=kernel_sizes[0] // 2),
            nn.ReLU(), nn.UpsamplingBilinear2d(scale_factor=2),
            nn.Conv2d(channels[1], c, kernel_sizes[1], padding=kernel_sizes[1] // 2), nn.Sigmoid())
        self.modules = nn.ModuleList([self.fc, self.conv])

    def parameters(self):
        return self.modules.parameters()

    def train(self):
        self.modules.train()

    def eval(self):
        self.modules.eval()

    def __call__(self, z, y, k):
        torch = self.torch
        code = torch.cat([z, torch.nn.functional.one_hot(y, k).float()], dim=1)
        x = self.fc(code).reshape(len(z), self.c0, *self.hw)
        x = self.conv(x)[:, :, : self.shape[0], : self.shape[1]]
        return x.permute(0, 2, 3, 1).reshape(len(z), -1)
