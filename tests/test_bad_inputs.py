"""The bad-input catalogue (issue #13): every input a user can get wrong ends in one line.

Each case runs the CLI in-process and must give exit status 2, exactly one non-empty line on
stderr that names the offending thing, no traceback, no MLflow run added to the store and no
cache entry published (only locks and logs may be left under the cache directory).

Why one catalogue: these inputs used to end in tracebacks, exit 1 or silently poisoned caches,
each fixed in its own module; one table shows they all stay fixed and that a new kind of bad
input has an obvious place to be added.
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.mlflow_plant import metadata, model_revision, open_sink, plant, result
from tests.tiny_models import (
    encoder_model,
    save_model,
    sentencepiece_tokenizer,
    shaped_tokenizer,
)
from xlingbench.cli.main import app

WORDS = ["water", "fire", "house", "Wasser", "Feuer", "Haus", "вода", "огонь", "дом"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good tiny model folder (tokenizer.json, config.json, model.safetensors) the cases break copies of."""
    rng = np.random.default_rng(0)
    pieces = ["\u2581" + w for w in WORDS] + list("abcdefghijklmnopqrstuvwxyz")
    matrix = rng.normal(size=(4 + len(pieces), 16)).astype(np.float32)
    return save_model(tmp_path_factory.mktemp("tiny") / "model", sentencepiece_tokenizer(pieces), encoder_model(matrix))


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An MLflow store with one model run (script_separability accuracy 0.9); returns (db file, parent run id)."""
    db = tmp_path_factory.mktemp("store") / "mlflow.db"
    parent, _ = plant(open_sink(f"sqlite:///{db}"), model_revision("m", "a" * 40),
                      [(result("script_separability", {"accuracy": 0.9}), metadata("script_separability"))])
    return db, parent


@dataclass
class Env:
    """One case's world: a fresh store and cache in ``tmp``, the good model, the planted store."""

    tmp: Path
    tiny: Path
    planted: tuple[Path, str]
    monkeypatch: pytest.MonkeyPatch
    mounts: list[Path] = field(default_factory=list)

    @property
    def db(self) -> Path:
        return self.tmp / "mlflow.db"

    @property
    def cache(self) -> Path:
        return self.tmp / "cache"

    def run(self, *args: str, model: str | Path | None = None, uri: str | None = None, cache: Path | None = None) -> list[str]:
        """``xlingbench run`` on this case's store and cache (on the tiny model unless told)."""
        return ["run", "-m", str(model or self.tiny), *args, "--tracking-uri", uri or f"sqlite:///{self.db}",
                "--cache-dir", str(cache or self.cache)]

    def model(self, change: Callable[[Path], object]) -> Path:
        """A copy of the good model folder, changed by ``change``."""
        folder = self.tmp / "broken-model"
        shutil.copytree(self.tiny, folder)
        change(folder)
        return folder

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def parallel(self, **files: bytes | str) -> Path:
        """A folder of parallel data: ``en="...", de="..."`` become ``data.en.tok``, ``data.de.tok``."""
        for lang, data in files.items():
            self.file(f"parallel/data.{lang}.tok", data)
        return self.tmp / "parallel"

    def store(self) -> str:
        """The planted store, copied to this case's store: compare/check read it, nothing may be added."""
        shutil.copy(self.planted[0], self.db)
        return f"sqlite:///{self.db}"

    def mount(self, folder: Path, options: str) -> Path:
        """A tmpfs at ``folder`` (``size=2m``, ``ro``...), or skip where mounting is not permitted."""
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=False, capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
        self.mounts.append(folder)
        return folder


def _no_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()


def _truncated(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _random_bytes(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))


def _config(**changes: object) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        path = folder / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return change


def _tensors(rename: Callable[[str], str | None]) -> Callable[[Path], None]:
    """Rewrite model.safetensors with each tensor renamed (``None``: dropped)."""
    def change(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        path = folder / "model.safetensors"
        tensors = load_file(str(path))
        save_file({rename(k): v.contiguous() for k, v in tensors.items() if rename(k)}, str(path), metadata={"format": "pt"})
    return change


_renamed_embedding = _tensors(lambda key: key.replace("word_embeddings", "word_embeddingz"))


def _embedding_rows(value: float) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        path = folder / "model.safetensors"
        tensors = load_file(str(path))
        key = next(k for k in tensors if k.endswith("word_embeddings.weight"))
        tensors[key][5:7] = value
        save_file(tensors, str(path), metadata={"format": "pt"})
    return change


def _pickle_only(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _no_tokenizer(folder: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)


def _big_tokenizer(folder: Path) -> None:
    _no_tokenizer(folder)
    shaped_tokenizer(500).save_pretrained(folder)


def _sentencepiece_only(env: Env) -> Path:
    """A tokenizer given only as a SentencePiece model (no tokenizer.json), with sentencepiece absent."""
    def change(folder: Path) -> None:
        _no_tokenizer(folder)
        (folder / "sentencepiece.bpe.model").write_bytes(b"\x0a\x05hello")
        (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "XLMRobertaTokenizer"}))
    env.monkeypatch.setitem(sys.modules, "sentencepiece", None)
    return env.model(change)


def _expect(env: Env, data: str) -> list[str]:
    return ["check", "--expect", str(env.file("expect.json", data)), "--run", env.planted[1], "--tracking-uri", env.store()]


def _dictionary(env: Env, data: bytes | str, name: str = "en-de.txt") -> list[str]:
    return env.run("-t", "translation_in_neighbours", "--dictionary", str(env.file(name, data)))


def _colap(env: Env, data: Path | str, *extra: str, languages: str = "en,de") -> list[str]:
    return env.run("-t", "colap", "--data", str(data), "--languages", languages, "--set", "colap.k=2", *extra)


def _readonly(env: Env) -> Path:
    return env.mount(env.tmp / "readonly", "size=1m,ro")


def _full_disk(env: Env) -> list[str]:
    """A model whose 3.8 MB embedding matrix cannot fit a 2 MB cache disk."""
    folder = save_model(env.tmp / "wide", shaped_tokenizer(30000),
                        encoder_model(np.random.default_rng(0).normal(size=(30000, 32)).astype(np.float32), layers=1))
    disk = env.mount(env.tmp / "disk", "size=2m")
    return ["run", "-m", str(folder), "-t", "script_separability", "--tracking-uri", f"sqlite:///{env.db}", "--cache-dir", str(disk)]


ONE_PAIR = "water Wasser\nfire Feuer\n"
#: 30 lines of 5 words from 40 (enough word types for latent concepts)
LINES = "".join(" ".join(f"w{(5 * i + j) % 40}" for j in range(5)) + "\n" for i in range(30))
TEXT = "not a database\n"

#: id -> (the arguments, given a case's Env; a fragment the one line must contain)
CASES: dict[str, tuple[Callable[[Env], list[str]], str] | object] = {
    # the command line itself
    "unknown-model": (lambda e: e.run(model="xlm-roberta-bas"), "xlm-roberta-bas"),
    "unknown-task": (lambda e: e.run("-t", "calig"), "calig"),
    "unknown-option": (lambda e: e.run("--nosuch"), "--nosuch"),
    "unknown-command": (lambda e: ["nosuchcommand"], "nosuchcommand"),
    "unknown-global-option": (lambda e: ["--verison"], "--verison"),
    "missing-argument": (lambda e: ["compare", "--tracking-uri", e.store()], "baseline"),
    "option-wrong-type": (lambda e: e.run("--seed", "seven"), "--seed"),
    "set-unknown-name": (lambda e: e.run("--set", "nosuch=1"), "nosuch"),
    "set-unknown-task-parameter": (lambda e: e.run("-t", "calign", "--set", "calign.theta_o=0.3"), "theta_o"),
    "set-wrong-type": (lambda e: e.run("-t", "colap", "--set", "colap.k=many"), "many"),
    "set-not-name-value": (lambda e: e.run("--set", "seven"), "seven"),
    "option-no-task-takes": (lambda e: e.run("-t", "script_separability", "--dictionary", "cldr"), "--dictionary"),
    "k-zero": (lambda e: e.run("-t", "colap", "--set", "colap.k=0"), "k=0"),
    "folds-one": (lambda e: e.run("-t", "script_separability", "--set", "folds=1"), "folds=1"),
    "folds-zero": (lambda e: e.run("-t", "script_separability", "--set", "folds=0"), "folds=0"),
    "folds-negative": (lambda e: e.run("-t", "script_separability", "--set", "folds=-3"), "folds=-3"),
    "min-tokens-one": (lambda e: e.run("-t", "script_separability", "--set", "min_tokens=1"), "min_tokens=1"),
    "sample-negative": (lambda e: e.run("-t", "neighbour_script_count", "--set", "sample=-0.5"), "sample=-0.5"),
    "neighbours-beyond-vocabulary": (lambda e: e.run("-t", "neighbour_script_count", "--set", "neighbours=100000"), "neighbours=100000"),
    "batch-size-zero": (lambda e: e.run("-t", "colap", "--set", "batch_size=0"), "batch_size=0"),
    "batch-size-negative": (lambda e: e.run("-t", "calign", "--set", "batch_size=-1"), "batch_size=-1"),
    "max-length-zero": (lambda e: e.run("-t", "colap", "--set", "max_length=0"), "max_length=0"),
    "ks-zero": (lambda e: e.run("-t", "translation_in_neighbours", "--set", "ks=0"), "ks=0"),
    "pairs-outside-cache": (lambda e: e.run("-t", "translation_in_neighbours", "--set", "pairs=../../x"), "../../x"),
    "experiment-empty": (lambda e: e.run("-t", "script_separability", "--experiment", ""), "--experiment"),
    "device-bogus": (lambda e: e.run("--device", "bogus"), "bogus"),
    "dtype-unknown": (lambda e: e.run("--dtype", "float8"), "float8"),
    "revision-of-a-local-folder": (lambda e: e.run("-r", "main"), "revision 'main'"),
    "revision-step-not-a-number": (lambda e: e.run("-r", "main@x", model="xlm-roberta-base"), "main@x"),
    "sink-unknown": (lambda e: e.run("--sink", "nosuchsink"), "nosuchsink"),
    # model folders and Hub ids
    "hub-id-not-cached-offline": (lambda e: e.run("-t", "script_separability", model="nosuch/model"), "nosuch/model@main is not in the local Hugging Face cache"),
    "model-no-weights": (lambda e: e.run("-t", "script_separability", model=e.model(_no_weights)), "no weights"),
    "model-truncated-safetensors": (lambda e: e.run("-t", "script_separability", model=e.model(_truncated)), "model.safetensors"),
    "model-random-byte-safetensors": (lambda e: e.run("-t", "script_separability", model=e.model(_random_bytes)), "model.safetensors"),
    "model-malformed-config": (lambda e: e.run("-t", "script_separability", model=e.model(lambda f: (f / "config.json").write_text("{nope"))), "config.json"),
    "model-unknown-model-type": (lambda e: e.run("-t", "script_separability", model=e.model(_config(model_type="nosuchtype"))), "nosuchtype"),
    "model-nan-rows": (lambda e: e.run("-t", "script_separability", model=e.model(_embedding_rows(float("nan")))), "non-finite"),
    "model-pickle-only": (lambda e: e.run("-t", "script_separability", model=e.model(_pickle_only)), "pytorch_model.bin"),
    "model-without-tokenizer": (lambda e: e.run("-t", "script_separability", model=e.model(_no_tokenizer)), "tokenizer"),
    "model-tokenizer-larger-than-matrix": (lambda e: e.run("-t", "script_separability", model=e.model(_big_tokenizer)), "500 tokens"),
    "model-embedding-key-renamed": (lambda e: e.run("-t", "script_separability", model=e.model(_renamed_embedding)), "input embedding"),
    "model-file-holds-another-tensor": (lambda e: e.run("-t", "script_separability", model=e.model(_tensors(lambda k: k if "LayerNorm" in k else None))), "input embedding"),
    "model-no-input-embedding-for-extraction": (lambda e: e.run("-t", "colap", "--data", str(e.parallel(en=LINES, de=LINES)), "--languages", "en,de", "--set", "colap.k=2", model=e.model(_renamed_embedding)), "input embedding"),
    "tokenizer-needs-sentencepiece": (lambda e: e.run("-t", "script_separability", model=_sentencepiece_only(e)), "pip install sentencepiece"),
    # dictionaries (task 3)
    "dictionary-empty": (lambda e: _dictionary(e, ""), "en-de.txt"),
    "dictionary-binary": (lambda e: _dictionary(e, b"\x1f\x8b\x08\x00\x00\x00water"), "en-de.txt"),
    "dictionary-utf16": (lambda e: _dictionary(e, ONE_PAIR.encode("utf-16")), "en-de.txt"),
    "dictionary-latin1": (lambda e: _dictionary(e, "water Wässer\n".encode("latin-1")), "en-de.txt"),
    "dictionary-one-column": (lambda e: _dictionary(e, "water\nfire\n"), "en-de.txt"),
    "dictionary-directory": (lambda e: e.run("-t", "translation_in_neighbours", "--dictionary", str(e.file("dicts/readme.md", "x").parent)), "dicts"),
    "dictionary-missing": (lambda e: e.run("-t", "translation_in_neighbours", "--dictionary", str(e.tmp / "en-xx.txt")), "en-xx.txt"),
    "dictionary-unnamed-pair": (lambda e: _dictionary(e, ONE_PAIR, "words.txt"), "words.txt"),
    # parallel data (tasks 4-5)
    "parallel-mismatched-lines": (lambda e: _colap(e, e.parallel(en=LINES, de="water fire\n")), "not line-aligned"),
    "parallel-empty-file": (lambda e: _colap(e, e.parallel(en=LINES, de="")), "data.de.tok"),
    "parallel-one-language": (lambda e: _colap(e, e.parallel(en=LINES, de=LINES), languages="en"), "languages=en"),
    "parallel-unknown-language": (lambda e: _colap(e, e.parallel(en=LINES, de=LINES), languages="en,xx"), "'xx'"),
    "parallel-unknown-language-gettext": (lambda e: _colap(e, "gettext", languages="en,xx"), "'xx'"),
    "parallel-invalid-utf8": (lambda e: _colap(e, e.parallel(en=LINES, de=b"water \xff\xfe fire\nhouse\nfire\n")), "data.de.tok"),
    "parallel-missing": (lambda e: _colap(e, e.tmp / "nosuch" / "data"), "nosuch"),
    # tracking stores
    "tracking-unreachable": (lambda e: e.run(uri="http://127.0.0.1:9"), "127.0.0.1:9"),
    "tracking-malformed": (lambda e: e.run("-t", "script_separability", uri="foo://bar"), "foo://bar"),
    "tracking-sqlite-in-memory": (lambda e: e.run("-t", "script_separability", uri="sqlite://"), "sqlite://"),
    "tracking-read-only-folder": (lambda e: e.run("-t", "script_separability", uri=f"sqlite:///{_readonly(e)}/mlflow.db"), "readonly"),
    "tracking-text-file-as-database": (lambda e: e.run("-t", "script_separability", uri=f"sqlite:///{e.file('notes.db', TEXT * 100)}"), "notes.db"),
    "tracking-half-created-database": (lambda e: e.run("-t", "script_separability", uri=f"sqlite:///{_half_created(e)}"), "half.db"),
    # the cache
    "cache-dir-is-a-file": (lambda e: e.run("-t", "script_separability", cache=e.file("cachefile", "x")), "cachefile"),
    "cache-dir-read-only": (lambda e: e.run("-t", "script_separability", cache=_readonly(e)), "readonly"),
    "cache-disk-full": (_full_disk, "disk"),
    "cache-disk-full-word-vectors": (lambda e: e.run("-t", "colap", "--data", str(e.parallel(en=LINES * 200, de=LINES * 200)), "--languages", "en,de",
                                                     "--set", "colap.k=2", "--set", "colap.sentences=0", cache=e.mount(e.tmp / "disk", "size=1m")), "disk"),
    # leaderboard, compare, check
    "leaderboard-out-existing-file": (lambda e: ["leaderboard", "--tracking-uri", e.store(), "--out", str(e.file("site", "x"))], "site"),
    "compare-unknown-ids": (lambda e: ["compare", "deadbeefdeadbeef", e.planted[1], "--tracking-uri", e.store()], "deadbeef"),
    "compare-unknown-tolerance-metric": (lambda e: ["compare", e.planted[1], e.planted[1], "--tolerance", "nosuchmetric=0.1", "--tracking-uri", e.store()], "nosuchmetric"),
    "compare-malformed-tolerance": (lambda e: ["compare", e.planted[1], e.planted[1], "--tolerance", "accuracy=lots", "--tracking-uri", e.store()], "accuracy=lots"),
    "check-unknown-run": (lambda e: ["check", "--expect", str(e.file("expect.json", '{"script_separability": {"accuracy": 0.9}}')), "--run", "deadbeefdeadbeef", "--tracking-uri", e.store()], "deadbeef"),
    "check-malformed-expectation": (lambda e: _expect(e, '{"script_separability": {"accuracy": "high"}'), "expect.json"),
    "check-misspelt-metric": (lambda e: _expect(e, '{"script_separability": {"acuracy": 0.9}}'), "acuracy"),
    "check-missing-expect-file": (lambda e: ["check", "--expect", str(e.tmp / "nosuch.json"), "--run", e.planted[1], "--tracking-uri", e.store()], "nosuch.json"),
}


# ---------------------------------------------------------------- the second campaign (issue 18)


def _calign(env: Env, *extra: str, data: Path | str | None = None) -> list[str]:
    return env.run("-t", "calign", "--data", str(data or env.parallel(en=LINES, de=LINES)), "--set", "calign.k=2", *extra)


def _calign_dictionary(env: Env, data: bytes | str, name: str = "calign-dict.txt") -> list[str]:
    return _calign(env, "--set", f"calign.dictionary={env.file(name, data)}")


def _link(env: Env, name: str, target: Path | str) -> Path:
    link = env.tmp / name
    link.symlink_to(target)
    return link


def _urandom_weights(folder: Path) -> None:
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").symlink_to("/dev/urandom")


def _missing_shard(folder: Path) -> None:
    """Weights under a shard index that names a second shard that is not there."""
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"roberta.embeddings.word_embeddings.weight": "model-00002-of-00002.safetensors"}}))


def _empty_vocabulary(folder: Path) -> None:
    """A tokenizer with no token at all (a zero-size vocabulary)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    _no_tokenizer(folder)
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({}, unk_token=None))).save_pretrained(folder)


def _cache_env(env: Env, value: str) -> list[str]:
    """``xlingbench run`` with XLINGBENCH_CACHE=value and no --cache-dir."""
    env.monkeypatch.setenv("XLINGBENCH_CACHE", value)
    return ["run", "-m", str(env.tiny), "-t", "script_separability", "--tracking-uri", f"sqlite:///{env.db}"]


CASES.update({
    # CALIGN's own dictionary and the parallel data: refused before the model loads (nothing cached)
    "calign-dictionary-empty": (lambda e: _calign_dictionary(e, ""), "calign-dict.txt is empty"),
    "calign-dictionary-one-column": (lambda e: _calign_dictionary(e, "water\nfire\n"), "one column"),
    "calign-dictionary-binary": (lambda e: _calign_dictionary(e, b"\x1f\x8b\x08\x00\x00\x00water"), "calign-dict.txt"),
    "calign-dictionary-directory": (lambda e: _calign(e, "--set", f"calign.dictionary={e.tmp}"), "dictionary="),
    "calign-data-missing-folder": (lambda e: _calign(e, data=e.tmp / "nosuch-folder"), "nosuch-folder"),
    "colap-data-prefix-without-files": (lambda e: _colap(e, e.file("pud/readme.md", "x").parent / "pud"), "pud.<language>.tok"),
    "calign-three-languages": (lambda e: _calign(e, "--set", "calign.languages=en,de,fr"), "exactly two languages"),
    "calign-theta-a-percent": (lambda e: _calign(e, "--set", "calign.theta_a=80"), "theta_a=80"),
    "calign-top-n-zero": (lambda e: _calign(e, "--set", "calign.top_n=0"), "top_n=0"),
    "colap-languages-repeated": (lambda e: _colap(e, e.parallel(en=LINES, de=LINES), languages="en,en"), "languages=en,en"),
    "colap-layers-malformed": (lambda e: _colap(e, e.parallel(en=LINES, de=LINES), "--set", "colap.layers=1-x"), "1-x"),
    "colap-sentences-negative": (lambda e: _colap(e, e.parallel(en=LINES, de=LINES), "--set", "colap.sentences=-1"), "sentences=-1"),
    "colap-n-init-zero": (lambda e: _colap(e, e.parallel(en=LINES, de=LINES), "--set", "colap.n_init=0"), "n_init=0"),
    "set-ks-empty": (lambda e: e.run("-t", "translation_in_neighbours", "--set", "ks="), "ks= must list positive integers"),
    # model paths: say what is wrong with the path, not "unknown model"
    "model-path-missing": (lambda e: e.run(model=e.tmp / "my-checkpoint"), "not there"),
    "model-path-relative-missing": (lambda e: e.run(model="./no-such-checkpoint"), "./no-such-checkpoint is not there"),
    "model-path-is-a-file": (lambda e: e.run(model=e.file("weights.bin", "x")), "a file, not a model folder"),
    "model-path-symlink-loop": (lambda e: e.run(model=_link(e, "loop", e.tmp / "loop")), "symbolic link loop"),
    "model-path-dangling-link": (lambda e: e.run(model=_link(e, "gone", e.tmp / "deleted-checkpoint")), "deleted-checkpoint, which does not exist"),
    # model files
    "model-safetensors-links-to-urandom": (lambda e: e.run("-t", "script_separability", model=e.model(_urandom_weights)), "model.safetensors is not a regular file"),
    "model-shard-index-names-missing-shard": (lambda e: e.run("-t", "script_separability", model=e.model(_missing_shard)), "model-00002-of-00002.safetensors"),
    "model-zero-size-vocabulary": (lambda e: e.run("-t", "script_separability", model=e.model(_empty_vocabulary)), "zero-size vocabulary"),
    "model-config-hidden-size-disagrees": (lambda e: e.run("-t", "colap", "--data", str(e.parallel(en=LINES, de=LINES)), "--languages", "en,de",
                                                           "--set", "colap.k=2", model=e.model(_config(hidden_size=32))), "config.json"),
    # the cache in a place that cannot hold files
    "cache-env-proc": (lambda e: _cache_env(e, "/proc"), "/proc"),
    "cache-dir-proc": (lambda e: e.run("-t", "script_separability", cache=Path("/proc")), "/proc"),
})


#: the same two-language file saved four ways: as written, on Windows, with a byte-order mark, with blank lines at the end
SAVED_AS = {"lf": lambda t: t, "crlf": lambda t: t.replace("\n", "\r\n"), "bom": lambda t: "\ufeff" + t,
            "blank-tail": lambda t: t.replace("\n", "\r\n") + "\r\n \r\n\t\n"}
RAW = "".join(f"Das Haus {i} ist rot, sagte er.\n" for i in range(30))


@pytest.mark.parametrize("ext", [".tok", ".txt"])
def test_crlf_bom_and_blank_tail_parallel_files_are_the_same_corpus(tmp_path: Path, ext: str) -> None:
    """Accepted, with the same corpus fingerprint (the key of every cache entry and of the run)."""
    from xlingbench.inputs.parallel_data import load_parallel

    corpora = {}
    for name, saved in SAVED_AS.items():
        for lang in ("en", "de"):
            path = tmp_path / name / f"data.{lang}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(saved(LINES if ext == ".tok" else RAW).encode("utf-8"))
        corpora[name] = load_parallel(str(tmp_path / name), ["en", "de"])
    assert {name: c.fingerprint for name, c in corpora.items()} == {name: corpora["lf"].fingerprint for name in SAVED_AS}
    assert all(c.sentences == corpora["lf"].sentences and len(c.sentences["en"]) == 30 for c in corpora.values())


def test_a_tok_and_a_txt_of_different_content_say_which_was_read(tmp_path: Path) -> None:
    """Both ``data.en.tok`` and ``data.en.txt`` in one folder: the model reads the raw ``.txt`` and
    the ``.tok`` gold words are located in it (xlingbench.inputs.gold_words). When the two files
    do not hold the same text, no word is located and the corpus says so, word count included,
    rather than reading one file silently."""
    from xlingbench.inputs.parallel_data import load_parallel

    for suffix, text in {"en.tok": LINES, "en.txt": RAW, "de.tok": LINES}.items():
        (tmp_path / f"data.{suffix}").write_text(text, encoding="utf-8")
    corpus = load_parallel(str(tmp_path), ["en", "de"])
    words = sum(len(line.split()) for line in LINES.splitlines())
    assert corpus.word_tokenizer == f"en: gold words (.tok) located in the raw text (.txt), {words} not located; de: whitespace (.tok)"


def test_an_absurd_k_is_shrunk_with_a_line(tmp_path, tiny):
    """``--set colap.k=10**12`` runs: K shrinks to what the word types allow, and one warning line says so."""
    env = Env(tmp_path, tiny, (tmp_path / "unused.db", ""), pytest.MonkeyPatch())
    outcome = CliRunner().invoke(app, _colap(env, env.parallel(en=LINES, de=LINES), "--set", "colap.k=1000000000000"), env={"COLUMNS": "200"})
    assert outcome.exit_code == 0, outcome.output
    shrunk = [line for line in outcome.output.splitlines() if "k shrunk from 1000000000000 to" in line]
    assert len(shrunk) == 1 and "Traceback" not in outcome.output, outcome.output


def test_a_read_only_cache_holding_every_entry_is_refused(tmp_path, tiny, planted, monkeypatch):
    """Decided: refused in one line (exit 2), even when every entry is there. Entries are read under
    a per-entry lock file and the run writes its library log there, so a read-only cache cannot
    serve a run; point --cache-dir at a writable copy. Nothing is logged. The cache is filled,
    then seen through a read-only bind mount (root would write through mode bits)."""
    env = Env(tmp_path, tiny, planted, monkeypatch)
    data = str(env.parallel(en=LINES, de=LINES))
    args = ["-t", "colap", "--data", data, "--languages", "en,de", "--set", "colap.k=2"]
    first = CliRunner().invoke(app, env.run(*args))
    assert first.exit_code == 0, first.output
    view = env.tmp / "readonly-cache"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(env.cache), str(view)], check=False, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=False, capture_output=True)
        if remount.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remount.stderr.decode(errors='replace').strip()}")
        runs_before = _runs(env.db)
        outcome = CliRunner().invoke(app, [*env.run(*args, cache=view), "--rerun"], env={"COLUMNS": "200"})
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert outcome.exit_code == 2 and len(lines) == 1 and "not writable" in lines[0], outcome.output
        assert "Traceback" not in outcome.output and _runs(env.db) == runs_before
    finally:
        subprocess.run(["umount", "--lazy", str(view)], check=False)


def _half_created(env: Env) -> Path:
    """A SQLite file holding a table that is not MLflow's (a store whose creation was interrupted)."""
    path = env.tmp / "half.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table alembic_version (version_num varchar(32))")
    return path


def _runs(db: Path) -> int:
    """Runs in an MLflow SQLite store (0 when the file or its tables do not exist)."""
    if not db.is_file():
        return 0
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute("select count(*) from runs").fetchone()[0]
        except sqlite3.DatabaseError:
            return 0


def _published(cache: Path) -> list[str]:
    """Files under the cache other than locks and logs: a published (or half-written) entry."""
    if not cache.is_dir():
        return []
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*")
                  if p.is_file() and p.suffix != ".lock" and p.relative_to(cache).parts[0] != "logs")


def _cases() -> list:
    """CASES as pytest params with readable ids."""
    return [pytest.param(c, id=name) for name, c in CASES.items()]


@pytest.mark.parametrize("case", _cases())
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, tmp_path, tiny, planted, monkeypatch):
    build, fragment = case
    env = Env(tmp_path, tiny, planted, monkeypatch)
    try:
        args = build(env)
        runs_before = _runs(env.db)
        outcome = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert "Traceback" not in outcome.output, outcome.output
        assert outcome.exit_code == 2, outcome.output
        assert len(lines) == 1, outcome.stderr
        assert fragment in lines[0], lines[0]
        assert _runs(env.db) == runs_before
        assert [_published(folder) for folder in (env.cache, *env.mounts)] == [[]] * (1 + len(env.mounts))
    finally:
        for folder in reversed(env.mounts):
            subprocess.run(["umount", "--lazy", str(folder)], check=False)  # the library log may still be open there


def test_max_length_beyond_the_models_positions_is_capped(tmp_path, tiny):
    """Accepted with a documented meaning (xlingbench.inputs.word_vectors): the tiny XLM-R has 80
    positions, 78 of them readable; a 100-word line read with max_length=512 is windowed at 78
    instead of failing inside the network."""
    env = Env(tmp_path, tiny, (tmp_path / "unused.db", ""), pytest.MonkeyPatch())
    long_line = " ".join(f"w{i % 40}" for i in range(100)) + "\n"
    data = env.parallel(en=LINES + long_line, de=LINES + long_line)
    outcome = CliRunner().invoke(app, _colap(env, data, "--set", "colap.max_length=512"))
    assert outcome.exit_code == 0, outcome.output
    infos = [json.loads(p.read_text()) for p in env.cache.glob("word_vectors/*/info.json")]
    assert [(info["max_length"], info["max_length_read"], info["windowed_sentences"]) for info in infos] == [(512, 78, 1)] * 2


def test_an_orphan_alignment_staging_folder_is_removed(tmp_path):
    """A killed alignment leaves ``.<key>.<random>`` behind; the next alignment, of any corpus,
    removes it, and keeps the staging of an entry whose lock is held (a live run's)."""
    from filelock import FileLock

    from xlingbench.inputs.alignment import induce_dictionary
    from xlingbench.inputs.cache import Cache

    orphan, live = tmp_path / "alignment" / f".{'0' * 24}.dead", tmp_path / "alignment" / f".{'1' * 24}.live"
    for folder in (orphan, live):
        folder.mkdir(parents=True)
        (folder / "links.npy").write_bytes(b"half")
    held = FileLock(tmp_path / "alignment" / f"{'1' * 24}.lock", is_singleton=True)
    with held:
        induced = induce_dictionary([["a", "b"]] * 3, [["x", "y"]] * 3, cache=Cache(tmp_path), corpus_fingerprint="c", pair=("en", "de"))
    assert not orphan.exists() and live.is_dir() and induced.path.is_file()
