"""PE checkpoints: an HMAC fingerprint under a local secret key, no pickle, torn or foreign files
ignored, every population type resumed bit for bit, and nothing left behind by a harness run.

Every test here points ``$DPARENA_HOME`` at its own temporary folder (as tests/methods/dp2stage/test_dp2stage.py
does), so the checkpoint key is never written into the user's real ``~/.cache/dparena``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import pickle
import re
import sqlite3
import stat
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest

from dparena.datasets import datasets
from dparena.datasets.schema import ImageSchema
from dparena.methods.pe.api import API
from dparena.methods.pe.apis.drawtext import DrawnImages, DrawText
from dparena.methods.pe.embeddings import Embedder, PixelEmbedder
from dparena.methods.pe.engine import PEConfig, PrivateEvolution, _plain
from dparena.methods.pe.population import payload
from dparena.privacy import Ledger
from dparena.privacy.secret import checkpoint_key, checkpoint_key_path, load_or_create_key

SCHEMA = ImageSchema(8, 8, 1, tuple(str(d) for d in range(10)))
SIGMA = 3.0
ITERATIONS = 3


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """This test's own $DPARENA_HOME (the checkpoint key lives under it)."""
    path = tmp_path / "dparena-home"
    monkeypatch.setenv("DPARENA_HOME", str(path))
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from dparena.assets import AssetStore

    return datasets.create("digits").load(AssetStore(tmp_path_factory.mktemp("assets")))


# -- three kinds of population (the APIs' return types) and one that cannot be stored safely -----

class NoiseImages(API):
    """Plain uint8 arrays, as the diffusion APIs return."""

    def random_api(self, label, n, rng):
        return rng.integers(0, 256, (n, 8, 8, 1)).astype(np.uint8)

    def variation_api(self, samples, labels, degree, rng):
        step = rng.integers(-40, 41, samples.shape) * degree
        return np.clip(samples + step, 0, 255).astype(np.uint8)


WORDS = "zero one two three four five six seven eight nine".split()


class Words(API):
    """Lists of str, as the LLM text API returns (non-ASCII and a lone surrogate on purpose)."""

    def random_api(self, label, n, rng):
        return [" ".join(rng.choice(WORDS, 4)) + " ü \udcff" for _ in range(n)]

    def variation_api(self, samples, labels, degree, rng):
        return [" ".join(w if rng.random() >= degree else str(rng.choice(WORDS))
                         for w in t.split()) for t in samples]


class BagOfWords(Embedder):
    def embed(self, data):
        return np.array([[t.split().count(w) for w in WORDS] for t in data], dtype=np.float32)


@dataclass
class Opaque:
    """A population object without to_arrays/from_arrays: it cannot be checkpointed safely."""

    images: np.ndarray

    def __len__(self):
        return len(self.images)

    def take(self, idx):
        return Opaque(self.images[idx])

    @classmethod
    def concat(cls, parts):
        return cls(np.concatenate([p.images for p in parts]))

    def payload(self):
        return self.images


class OpaqueImages(NoiseImages):
    def random_api(self, label, n, rng):
        return Opaque(super().random_api(label, n, rng))

    def variation_api(self, samples, labels, degree, rng):
        return Opaque(super().variation_api(samples.images, labels, degree, rng))


class Killed(Exception):
    pass


def _setup(kind: str, digits, n_private: int = 300):
    """(engine, private embeddings, labels) for a population kind."""
    config = PEConfig(iterations=ITERATIONS, population_sizes=40,
                      degrees=[0] + [0.5] * ITERATIONS, keep_selected=True)
    labels = digits.private_labels[:n_private]
    if kind == "texts":
        embedder = BagOfWords()
        private = [" ".join([WORDS[d]] * 3) for d in labels]
        return PrivateEvolution(Words(), embedder, config), embedder.embed(private), labels
    api = {"drawtext": DrawText(schema=SCHEMA), "array": NoiseImages(),
           "opaque": OpaqueImages()}[kind]
    embedder = PixelEmbedder()
    return PrivateEvolution(api, embedder, config), embedder.embed(digits.private[:n_private]), \
        labels


def _run(engine, emb, labels, checkpoint=None, seed=0, stop_after=None, seen=None):
    def on_iteration(t, state):
        if seen is not None:
            seen.append(t)
        if t == stop_after:
            raise Killed

    ledger = Ledger()
    out = engine.run(emb, labels, np.full(10, 0.1), SIGMA, np.random.default_rng(seed), ledger,
                     checkpoint, on_iteration)
    return out, ledger


def _same(a, b) -> bool:
    (sa, la, ea), (sb, lb, eb) = a, b
    if isinstance(sa, DrawnImages):
        same = np.array_equal(sa.images, sb.images) and np.array_equal(sa.params, sb.params)
    elif isinstance(sa, list):
        same = sa == sb
    else:
        same = np.array_equal(payload(sa), payload(sb))
    return same and np.array_equal(la, lb) and ea == eb


def _meta(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("state.json"))


# -- the key -------------------------------------------------------------------------------------

def _key_in_child(_):
    return checkpoint_key()


def test_key_is_32_random_bytes_made_once_mode_0600_and_shared_by_racing_processes(home, tmp_path):
    path = checkpoint_key_path()
    assert path == home / "secrets" / "checkpoint.key"
    assert not path.exists()
    with mp.get_context("fork").Pool(4) as pool:  # racing first callers agree on one key
        keys = pool.map(_key_in_child, range(8))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert path.read_bytes() == keys[0] == checkpoint_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["checkpoint.key"]  # no temporary file left behind
    assert checkpoint_key(tmp_path / "elsewhere") != keys[0]  # random, not derived


def test_a_process_that_loses_the_race_adopts_the_winners_key(tmp_path, monkeypatch):
    path = tmp_path / "secrets" / "checkpoint.key"
    real_link = os.link

    def link_after_a_rival(src, dst):  # another process links its key first
        real_link_target = tmp_path / "rival"
        real_link_target.write_bytes(b"r" * 32)
        real_link(real_link_target, dst)
        real_link(src, dst)  # raises FileExistsError, as for the loser of a real race

    monkeypatch.setattr(os, "link", link_after_a_rival)
    assert load_or_create_key(path) == b"r" * 32
    assert sorted(os.listdir(path.parent)) == ["checkpoint.key"]


def test_a_damaged_or_readable_key_file_is_refused_or_tightened(tmp_path):
    path = tmp_path / "secrets" / "checkpoint.key"
    key = load_or_create_key(path)
    path.chmod(0o644)
    assert load_or_create_key(path) == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="checkpoint.key"):
        load_or_create_key(path)


# -- the fingerprint -----------------------------------------------------------------------------

def _old_sha256(engine, emb, labels, proportions, sigma, rng) -> str:
    """The fingerprint as it was: a plain SHA-256 anyone holding the inputs could recompute."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(emb).tobytes())
    h.update(np.asarray(labels, dtype=np.int64).tobytes())
    h.update(np.asarray(proportions, dtype=np.float64).tobytes())
    h.update(repr((sigma, engine.config, type(engine.api).__qualname__, _plain(engine.api),
                   type(engine.embedder).__qualname__, _plain(engine.embedder),
                   rng.bit_generator.state)).encode())
    return h.hexdigest()


def test_fingerprint_is_an_hmac_under_the_secret_key(digits, tmp_path, home):
    engine, emb, labels = _setup("drawtext", digits)
    props = np.full(10, 0.1)

    def fp(key, e=emb, lab=labels):
        return engine._fingerprint(e, np.asarray(lab, np.int64), props, SIGMA,
                                   np.random.default_rng(0), key)

    k1, k2 = os.urandom(32), os.urandom(32)
    assert fp(k1) == fp(k1) and re.fullmatch(r"[0-9a-f]{64}", fp(k1))
    assert fp(k1) != fp(k2)  # another key, another fingerprint
    assert fp(k1) != _old_sha256(engine, emb, labels, props, SIGMA, np.random.default_rng(0))
    assert fp(k1) != fp(k1, emb[1:], labels[1:])  # still tells inputs apart (one record fewer)

    path = tmp_path / "work" / "pe-checkpoint.npz"
    _run(engine, emb, labels, path)
    stored = _meta(path)["fingerprint"]
    key = (home / "secrets" / "checkpoint.key").read_bytes()
    assert stored == fp(key)
    # without the key, the file's holder cannot test which dataset was the input
    for e, lab in ((emb, labels), (emb[1:], labels[1:])):
        assert stored != _old_sha256(engine, e, lab, props, SIGMA, np.random.default_rng(0))
    assert key not in path.read_bytes() and key.hex() not in path.read_text("latin-1")


def test_a_checkpoint_made_under_another_key_is_not_resumed(digits, tmp_path, monkeypatch,
                                                           caplog):
    engine, emb, labels = _setup("drawtext", digits)
    path = tmp_path / "work" / "pe-checkpoint.npz"
    with pytest.raises(Killed):
        _run(engine, emb, labels, path, stop_after=1)
    monkeypatch.setenv("DPARENA_HOME", str(tmp_path / "another-home"))
    seen = []
    with caplog.at_level(logging.INFO, "dparena.methods.pe.engine"):
        _run(engine, emb, labels, path, seen=seen)
    assert seen == [0, 1, 2, 3]  # started over
    assert "other inputs" in caplog.text


# -- resume, per population type -----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["drawtext", "array", "texts"])
def test_a_killed_run_resumes_bit_identical_for_every_population_type(digits, tmp_path, kind):
    engine, emb, labels = _setup(kind, digits)
    whole, whole_ledger = _run(engine, emb, labels)  # no checkpoint at all
    path = tmp_path / "work" / "pe-checkpoint.npz"
    with pytest.raises(Killed):
        _run(engine, emb, labels, path, stop_after=1)
    assert _meta(path)["iteration"] == 1
    seen = []
    resumed, resumed_ledger = _run(engine, emb, labels, path, seen=seen)
    assert seen == [2, 3]  # iterations 0 and 1 were not redone
    assert _same(whole, resumed)
    assert resumed_ledger.to_list() == whole_ledger.to_list()
    # a finished checkpoint resumes to the same output without running anything
    seen.clear()
    again, _ = _run(engine, emb, labels, path, seen=seen)
    assert seen == [] and _same(whole, again)


def test_an_unserialisable_population_runs_without_a_checkpoint(digits, tmp_path, caplog):
    engine, emb, labels = _setup("opaque", digits)
    path = tmp_path / "work" / "pe-checkpoint.npz"
    with caplog.at_level(logging.WARNING, "dparena.methods.pe.engine"):
        (samples, out_labels, _), ledger = _run(engine, emb, labels, path)
    assert len(samples) == 40 and len(ledger) == ITERATIONS
    assert "cannot be checkpointed" in caplog.text and "Opaque" in caplog.text
    assert not path.exists()
    assert not path.parent.exists() or not list(path.parent.iterdir())  # no temporary file either


# -- no pickle -----------------------------------------------------------------------------------

class Boom:
    """Unpickling it creates a file: proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_the_checkpoint_is_json_and_plain_npy_without_pickle(digits, tmp_path):
    engine, emb, labels = _setup("drawtext", digits)
    path = tmp_path / "work" / "pe-checkpoint.npz"
    _run(engine, emb, labels, path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert names[0] == "state.json"
        meta = json.loads(zf.read("state.json"))
        assert all(n.endswith(".npy") for n in names[1:]) and len(names) == 1 + 2 * 10
        for name in names[1:]:
            with zf.open(name) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
            assert not arr.dtype.hasobject
    assert meta["version"] == 2 and meta["iteration"] == ITERATIONS
    assert meta["rng_state"]["bit_generator"] == "PCG64"
    assert isinstance(meta["rng_state"]["state"]["state"], int)  # 128-bit ints survive JSON
    assert [e["params"]["iteration"] for e in meta["entries"]] == [1, 2, 3]
    assert meta["populations"]["0"]["type"] == "dparena.methods.pe.apis.drawtext:DrawnImages"
    assert list(tmp_path.joinpath("work").iterdir()) == [path]  # no temporary file left


def test_a_planted_pickle_is_never_loaded(digits, tmp_path, caplog):
    engine, emb, labels = _setup("drawtext", digits)
    path = tmp_path / "work" / "pe-checkpoint.npz"
    path.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    path.write_bytes(pickle.dumps(Boom(marker)))
    seen = []
    with caplog.at_level(logging.WARNING, "dparena.methods.pe.engine"):
        _run(engine, emb, labels, path, seen=seen)
    assert seen == [0, 1, 2, 3] and not marker.exists()
    assert "ignoring unreadable checkpoint" in caplog.text

    # a forged file with the right fingerprint (we hold the key) and a pickled object array inside
    # is refused too: arrays are read with allow_pickle=False
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if name.endswith("images.npy"):
                with zf.open(name, "w") as fh:
                    np.lib.format.write_array(fh, np.array([Boom(marker)], dtype=object),
                                              allow_pickle=True)
            else:
                zf.writestr(name, data)
    seen.clear()
    _run(engine, emb, labels, path, seen=seen)
    assert seen == [0, 1, 2, 3] and not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "old-version", "not-json",
                                    "missing-array", "wrong-length"])
def test_a_torn_or_foreign_checkpoint_starts_over(digits, tmp_path, damage):
    engine, emb, labels = _setup("array", digits)
    whole, _ = _run(engine, emb, labels)
    path = tmp_path / "work" / "pe-checkpoint.npz"
    with pytest.raises(Killed):
        _run(engine, emb, labels, path, stop_after=1)
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["state.json"])
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        if damage == "old-version":
            members["state.json"] = json.dumps({**meta, "version": 1}).encode()
        elif damage == "not-json":
            members["state.json"] = b"\x80\x04not json"
        elif damage == "missing-array":
            del members[next(n for n in members if n.endswith(".npy"))]
        elif damage == "wrong-length":
            meta["populations"]["0"]["n"] += 1
            members["state.json"] = json.dumps(meta).encode()
        with zipfile.ZipFile(path, "w") as zf:
            for name, blob in members.items():
                zf.writestr(name, blob)
    seen = []
    out, _ = _run(engine, emb, labels, path, seen=seen)
    assert seen == [0, 1, 2, 3] and _same(whole, out)


# -- through the harness -------------------------------------------------------------------------

def test_a_harness_run_leaves_only_its_synthetic_file(tmp_path, home, monkeypatch):
    from dparena.assets import AssetStore
    from dparena.harness.runner import Runner
    from dparena.harness.store import Store
    from dparena.harness.suite import parse_suite

    saves = tmp_path / "saves.jsonl"
    real_save = PrivateEvolution._save

    def spy(path, state):  # runs in the forked worker, which inherits the patch
        with open(saves, "a") as fh:
            fh.write(json.dumps({"path": str(path), "fingerprint": state.fingerprint}) + "\n")
        return real_save(path, state)

    monkeypatch.setattr(PrivateEvolution, "_save", staticmethod(spy))
    raw = {"name": "ck", "seeds": [0], "epsilons": [2.0], "delta": 1e-5,
           "section": [{"dataset": "digits", "n_samples": 40, "metrics": [],
                        "methods": [{"name": "pe-image",
                                     "params": {"api": "drawtext", "iterations": 2,
                                                "population_sizes": 40}}]}]}
    specs = parse_suite(raw).specs
    store = Store(tmp_path / "store" / "runs.sqlite")
    summary = Runner(store, assets=AssetStore(home)).run(specs)
    assert summary.ok == 1, summary.failed

    made = [json.loads(line) for line in saves.read_text().splitlines()]
    work = store.work_dir(specs[0])
    assert [m["path"] for m in made] == [str(work / "pe-checkpoint.npz")] * 3  # t = 0, 1, 2
    fingerprint = made[0]["fingerprint"]
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    assert not work.exists()  # deleted once the run was recorded
    published = sorted(p.relative_to(store.artifacts) for p in store.artifacts.rglob("*")
                       if p.is_file())
    assert [str(p) for p in published] == [f"{specs[0].key}/synthetic.npz"]
    with np.load(store.artifacts / published[0], allow_pickle=False) as z:
        assert sorted(z.files) == ["data", "labels"]
    con = sqlite3.connect(store.path)
    try:
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    assert fingerprint not in dump and "fingerprint" not in dump
    assert not re.search(r"[0-9a-f]{64}", dump)  # no hash of anything in the record
    assert (home / "secrets" / "checkpoint.key").exists()  # the key stays in $DPARENA_HOME
    assert not [p for p in (tmp_path / "store").rglob("*.key")]
