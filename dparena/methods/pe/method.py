"""Methods ``pe-image`` and ``pe-text`` (Private Evolution) and ``public-only`` (their ε = 0 anchor).

One method class, :class:`PEMethod`, holds the settings, the privacy calibration and the wiring of
the engine; a subclass per modality says which API and embedding it defaults to and how its
samples are returned.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from dparena.errors import ConfigError
from dparena.methods.base import Method, Task, allocate
from dparena.methods.pe.population import payload
from dparena.privacy import Ledger
from dparena.types import Modality, Synthetic

CLASS_COUNTS = ("uniform", "dp")


def _public_proportions(schema, class_counts: str) -> np.ndarray | None:
    """Class fractions known without private data: the schema's, or uniform when asked."""
    if schema.class_proportions is not None:
        return np.asarray(schema.class_proportions, dtype=np.float64)
    if class_counts == "uniform":
        return np.full(schema.num_classes, 1.0 / schema.num_classes)
    return None


def dp_class_proportions(labels: np.ndarray, num_classes: int, sigma: float,
                         noise, ledger: Ledger) -> np.ndarray:
    """Class fractions from a Gaussian-noised private label histogram (L2 sensitivity 1 under
    adding or removing one record), negative counts clipped to 0; uniform if all are 0.
    Booked in ``ledger``."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    noisy = np.maximum(counts + noise.normal(0.0, sigma, num_classes), 0.0)
    ledger.gaussian("PE class counts (noisy private label histogram)", sigma=sigma,
                    sensitivity=1.0)
    if not noisy.sum() > 0:
        return np.full(num_classes, 1.0 / num_classes)
    return noisy / noisy.sum()


class PEMethod(Method):
    """Private Evolution: a black-box generator steered by DP nearest-neighbour votes.

    The engine and the meaning of the schedules (T + 1 entries, entry t at iteration t) are in
    :mod:`dparena.methods.pe.engine`. The histogram noise σ is calibrated so that the T releases
    (plus the DP class count when ``class_counts = "dp"``, which takes ``count_budget_fraction`` of
    μ²) compose to exactly the run's (ε, δ) in μ-GDP. Subclasses set the defaults of their modality.
    """

    default_api: ClassVar[str]
    default_embedding: ClassVar[str]
    default_selection: ClassVar[str] = "sample"
    #: the reference's population shape: variations per selected sample (next_variation_api_fold),
    #: of each random sample at t = 0 (initial_variation_api_fold), and keep_selected
    default_variations: ClassVar[int] = 1
    default_initial_variations: ClassVar[int] = 0
    default_keep_selected: ClassVar[bool] = False
    # from the noisy histograms (and the DP class count): post-processing of the releases
    released_info = frozenset({"proportions", "uniform_fallbacks", "events"})

    def __init__(self, api: str | None = None, iterations: int = 5,
                 population_sizes: int | list[int] | None = None,
                 degrees: float | list[float] | None = None, num_nearest_neighbors: int = 1,
                 distance: str = "l2", lookahead: int = 0, threshold: float = 0.0,
                 selection: str | None = None, variations: int | None = None,
                 initial_variations: int | None = None, keep_selected: bool | None = None,
                 embedding: str | None = None, class_counts: str = "uniform",
                 count_budget_fraction: float = 0.1, api_params: dict[str, Any] | None = None,
                 batch_size: int = 1024):
        from dparena.methods.pe.embeddings import EMBEDDERS

        if class_counts not in CLASS_COUNTS:
            raise ConfigError(f"class_counts must be one of {list(CLASS_COUNTS)}")
        if not 0.0 < count_budget_fraction < 1.0:
            raise ConfigError("count_budget_fraction must lie strictly between 0 and 1")
        api = api or self.default_api
        embedding = embedding or self.default_embedding
        if embedding not in EMBEDDERS:
            raise ConfigError(f"unknown embedding {embedding!r}; use one of {sorted(EMBEDDERS)}")
        self.api = api
        self.iterations = iterations
        self.population_sizes = population_sizes
        self.degrees = degrees
        self.num_nearest_neighbors = num_nearest_neighbors
        self.distance = distance
        self.lookahead = lookahead
        self.threshold = threshold
        self.selection = selection or self.default_selection
        self.variations = variations if variations is not None else self.default_variations
        self.initial_variations = (initial_variations if initial_variations is not None
                                   else self.default_initial_variations)
        self.keep_selected = (keep_selected if keep_selected is not None
                              else self.default_keep_selected)
        self.embedding = embedding
        self.class_counts = class_counts
        self.count_budget_fraction = count_budget_fraction
        self.api_params = dict(api_params or {})
        self.batch_size = batch_size
        self._config(1)  # validates every schedule now, before any data is read

    def _config(self, n_samples: int):
        """The engine configuration; population sizes default to ``n_samples`` at every t."""
        from dparena.methods.pe.engine import PEConfig

        return PEConfig(
            iterations=self.iterations,
            population_sizes=(self.population_sizes if self.population_sizes is not None
                              else n_samples),
            degrees=(self.degrees if self.degrees is not None
                     else self.default_degrees(self.iterations)),
            num_nearest_neighbors=self.num_nearest_neighbors, distance=self.distance,
            lookahead=self.lookahead, threshold=self.threshold, selection=self.selection,
            variations=self.variations, initial_variations=self.initial_variations,
            keep_selected=self.keep_selected,
            batch_size=self.batch_size)

    def default_degrees(self, iterations: int) -> list[float]:
        """The variation schedule used when none is given (entry 0 = 0, the random_api draw)."""
        raise ConfigError(f"{self.name} with api={self.api!r} needs an explicit degrees schedule "
                          f"({iterations + 1} entries, entry 0 = 0)")

    def output(self, samples: Any) -> Any:
        """The final population's payload as the harness stores it."""
        return payload(samples)

    def generate(self, task: Task, ledger: Ledger, on_iteration=None) -> Synthetic:
        from dparena.methods.pe.apis import make_api
        from dparena.methods.pe.embeddings import make_embedder
        from dparena.methods.pe.engine import PrivateEvolution
        from dparena.privacy import accountants

        config = self._config(task.n_samples)
        if config.output_size != task.n_samples:
            what = ("the selected samples of the last iteration" if config.keep_selected
                    else f"times variations = {config.variations}")
            raise ConfigError(f"population_sizes[{config.iterations}] ({what}) must give "
                              f"n_samples={task.n_samples} outputs, not {config.output_size}")
        if task.private_labels is None:
            raise ConfigError(f"{self.name} needs labelled private data (private_labels)")
        if not task.budget.is_private:
            raise ConfigError(f"{self.name} needs a finite epsilon; use public-only or real for "
                              f"references")
        schema = task.schema
        api = make_api(self.api, schema, self.api_params)
        engine = PrivateEvolution(api, make_embedder(self.embedding), config)
        samples, labels = schema.conform(task.private, task.private_labels, "private data")

        mu = accountants.gdp_mu(task.budget.epsilon, task.budget.delta) * (1 - 1e-9)
        proportions = _public_proportions(schema, self.class_counts)
        pe_share = 1.0
        if proportions is None:  # bought: a DP label count, composed with PE in μ-GDP
            pe_share = 1.0 - self.count_budget_fraction
            count_sigma = 1.0 / (mu * math.sqrt(self.count_budget_fraction))
            proportions = dp_class_proportions(labels, schema.num_classes, count_sigma,
                                               task.noise, ledger)
        sigma = math.sqrt(config.iterations) / (mu * math.sqrt(pe_share))

        private_emb = engine.embedder.embed(samples)
        checkpoint = task.workdir / "pe-checkpoint.npz" if task.workdir is not None else None

        def iteration_done(t, state):
            task.report("PE iteration", t, config.iterations)
            if on_iteration is not None:
                on_iteration(t, state)

        final, out_labels, events = engine.run(private_emb, labels, proportions, sigma,
                                               task.rng, ledger, checkpoint, iteration_done,
                                               noise=task.noise)
        fallbacks = [e for e in events if e["event"] == "uniform-fallback"]
        return Synthetic(data=self.output(final), labels=out_labels,
                         info={"sigma": sigma, "proportions": proportions.tolist(),
                               "uniform_fallbacks": fallbacks, "events": events})


class PEImage(PEMethod):
    """Private Evolution for images (Lin et al., "Differentially Private Synthetic Data via
    Foundation Model APIs 1: Images", ICLR 2024, Alg. 1); with ``api = "drawtext"`` it is Sim-PE
    (Lin et al., 2025). Votes in raw pixels by default (``embedding = "inception"`` as the paper).

    ``api = "drawtext"`` renders digits / each label's first character with matplotlib's DejaVu
    fonts (random font, size, stroke, rotation, shift); ``"diffusion"`` and
    ``"stable-diffusion"`` wrap diffusion models (docs/image-apis.md). Per iteration and class,
    each private image votes for its nearest synthetic image(s) (``num_nearest_neighbors``,
    ``distance`` l2 / cosine, unit-norm votes); Gaussian noise, ``threshold``, ``selection``
    sample / rank; then the next population as the reference's ``PEPopulation`` builds it:
    ``variations`` variations of degree ``degrees[t]`` of each selected sample
    (``initial_variations`` of each random one at t = 0), plus the selected ones once each with
    ``keep_selected`` (then the output is the N selected at the last iteration); ``lookahead``.
    The schedules ``population_sizes`` and ``degrees`` have T + 1 entries, entry t used at
    iteration t (entry 0 = the random_api draw, degree 0). σ from (ε, δ, T) in μ-GDP; class sizes
    from the public schema, ``class_counts = "uniform"`` or ``"dp"`` (a Gaussian label count
    taking ``count_budget_fraction`` of μ²). A checkpoint per iteration under the run's work
    folder: a killed run resumes bit-identically.
    """

    name = "pe-image"
    modality = Modality.IMAGE
    description = "Private Evolution (Sim-PE DrawText or a diffusion API) steered by DP NN votes"
    extra = "image"
    version = "2"  # 2: keep_selected keeps each selected image once beside its variations
    default_api = "drawtext"
    default_embedding = "pixels"

    def default_degrees(self, iterations: int) -> list[float]:
        """DrawText degrees fall linearly from 1 to 0.2 over t = 1..T."""
        if self.api != "drawtext":
            return super().default_degrees(iterations)
        return [0.0] + [float(x) for x in np.linspace(1.0, 0.2, iterations)]

    def output(self, samples: Any) -> np.ndarray:
        return np.asarray(payload(samples), dtype=np.uint8)


class PEText(PEMethod):
    """Aug-PE: Private Evolution for text (Xie et al., "Differentially Private Synthetic Data via
    Foundation Model APIs 2: Text", ICML 2024, Alg. 1).

    The API is ``llm-text`` (:mod:`dparena.methods.pe.apis.text`): ``api_params`` name the LLM
    (``llm``: a model directory, a hub id or ``"openai:MODEL"``) and the variation ``mode``.
    Votes in sentence embeddings (all-MiniLM-L6-v2). As Aug-PE (and the reference implementation's
    ``PEPopulation(selection_mode="rank", keep_selected=True, ...)``): with N = ``population_sizes``
    each population holds L·N texts — N selected ones and ``variations`` = L − 1 variations of each
    (the initial one N random texts and ``initial_variations`` = L − 1 variations of each); each
    iteration keeps the top N by noisy count, each once, and the output is the N texts selected at
    the last iteration. Defaults: L = 4 (Aug-PE's Yelp runs use L = 7). Default degrees (blank
    probability / paraphrase temperature position) fall from 0.6 to 0.3 over t = 1..T.
    """

    name = "pe-text"
    modality = Modality.TEXT
    description = "Aug-PE: Private Evolution for text with an LLM API, steered by DP NN votes"
    extra = "text"
    version = "3"  # 2: rank selection the default; 3: Aug-PE's population (L·N, top N kept once)
    default_api = "llm-text"
    default_embedding = "sentence"
    default_selection = "rank"  # Aug-PE: the top N samples by noisy count
    default_variations = 3
    default_initial_variations = 3
    default_keep_selected = True

    def default_degrees(self, iterations: int) -> list[float]:
        return [0.0] + [float(x) for x in np.linspace(0.6, 0.3, iterations)]

    def output(self, samples: Any) -> list[str]:
        return [str(t) for t in payload(samples)]


class PublicOnly(Method):
    """The ε = 0 anchor of PE: ``random_api`` samples only, no private data read.

    Shows what the generator gives from public knowledge alone (class names and the schema's class
    proportions, uniform when the schema has none); Lin et al. (2024, 2025) and Xie et al. (2024)
    compare PE with it. ``api`` defaults to ``drawtext`` for images and ``llm-text`` for texts.
    """

    name = "public-only"
    modality = (Modality.IMAGE, Modality.TEXT)
    description = "Public-only anchor of PE: random_api samples from class names alone (ε = 0)"
    extra = ""
    version = "1"
    is_dp = False

    def __init__(self, api: str | None = None, api_params: dict[str, Any] | None = None):
        self.api = api
        self.api_params = dict(api_params or {})

    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        from dparena.methods.pe.apis import make_api
        from dparena.methods.pe.population import concat

        text = getattr(task.schema, "kind", "") == "text"
        api = make_api(self.api or ("llm-text" if text else "drawtext"), task.schema,
                       self.api_params)
        proportions = _public_proportions(task.schema, "uniform")
        sizes = allocate(task.n_samples, proportions)
        parts = [api.random_api(c, int(n), task.rng) for c, n in enumerate(sizes) if n > 0]
        labels = np.concatenate([np.full(n, c, dtype=np.int64)
                                 for c, n in enumerate(sizes) if n > 0])
        data = payload(concat(parts))
        data = [str(t) for t in data] if text else np.asarray(data, dtype=np.uint8)
        return Synthetic(data=data, labels=labels)
