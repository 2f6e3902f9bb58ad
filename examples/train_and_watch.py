"""Train a tiny multilingual masked language model on real parallel text and watch xlingbench's
metrics move over its checkpoints, in the same MLflow run as the loss.

    python examples/train_and_watch.py --data ../shared/data/pud --out tiny-run
    mlflow ui --backend-store-uri sqlite:///mlflow.db

A word-level vocabulary is built from the parallel sentences (the most frequent words of each
language), a 2-layer XLM-R-shaped model of width 64 is trained from scratch with transformers'
``Trainer``, and :class:`xlingbench.training.XlingbenchCallback` evaluates each saved checkpoint:
script separability and neighbour script counts (embedding matrix only) and CALIGN between two
languages (contextual word vectors of every layer). A few minutes on a laptop CPU. At the end it
prints the table of each headline by step, read back from MLflow.

Everything random takes ``--seed``: the same command gives the same numbers.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

#: languages of the training text: five scripts (Latin, Cyrillic, Arabic, Devanagari, Han)
LANGUAGES = ("en", "de", "ru", "ar", "hi", "zh")
#: CALIGN's pair
PAIR = ("en", "de")
WORD_START = "\u2581"


def words_by_language(data: Path, languages: tuple[str, ...]) -> dict[str, list[list[str]]]:
    """The pre-tokenised sentences (``<name>.<lang>.tok``) of each language, as word lists."""
    found = {}
    for lang in languages:
        files = sorted(data.glob(f"*.{lang}.tok"))
        if not files:
            raise SystemExit(f"error: {data} has no *.{lang}.tok file. Fix: pass --data a folder of parallel .tok files (e.g. PUD).")
        found[lang] = [line.split() for line in files[0].read_text(encoding="utf-8").splitlines() if line.strip()]
    return found


def build_tokenizer(corpus: dict[str, list[list[str]]], per_language: int) -> Any:
    """A word-level tokenizer of the ``per_language`` most frequent words of each language (``▁word``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    words: dict[str, None] = {}
    for sentences in corpus.values():
        for word, _ in Counter(w for sentence in sentences for w in sentence).most_common(per_language):
            words.setdefault(WORD_START + word)
    vocab = {token: i for i, token in enumerate([*specials, *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always")
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")


def tiny_model(vocab_size: int, width: int, seed: int) -> Any:
    """A 2-layer XLM-R masked language model of ``width`` (input and output embeddings tied, as
    XLM-R's), initialised from ``seed``."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.manual_seed(seed)
    config = XLMRobertaConfig(vocab_size=vocab_size, hidden_size=width, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=2 * width, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                              eos_token_id=2, type_vocab_size=1)
    return XLMRobertaForMaskedLM(config)


def train(out: Path, data: Path, *, steps: int, save_steps: int, seed: int = 0, width: int = 64, per_language: int = 800,
          languages: tuple[str, ...] = LANGUAGES, callbacks: tuple[Any, ...] = (), report_to: str = "none",
          model: Any = None) -> Any:
    """Train the tiny model for ``steps`` steps on ``data``, saving a checkpoint (with its tokenizer)
    every ``save_steps`` under ``out``; returns the trained model."""
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments

    corpus = words_by_language(data, languages)
    tokenizer = build_tokenizer(corpus, per_language)
    texts = [" ".join(sentence) for sentences in corpus.values() for sentence in sentences]
    examples = [tokenizer(text, truncation=True, max_length=128) for text in texts]
    args = TrainingArguments(output_dir=str(out), max_steps=steps, save_steps=save_steps, save_strategy="steps",
                             per_device_train_batch_size=32, learning_rate=3e-3, warmup_steps=0, logging_steps=save_steps,
                             seed=seed, data_seed=seed, use_cpu=True, report_to=report_to, save_only_model=True,
                             dataloader_num_workers=0, disable_tqdm=True)
    model = model or tiny_model(len(tokenizer), width, seed)
    trainer = Trainer(model=model, args=args, train_dataset=examples, processing_class=tokenizer, callbacks=list(callbacks),
                      data_collator=DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=seed))
    trainer.train()
    return trainer.model


def table(tracking_uri: str, experiment: str, name: str) -> list[tuple[int, dict[str, float]]]:
    """(step, headlines) of the model's checkpoints, from its parent runs in MLflow, in step order."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], "tags.`xlingbench.role` = 'model' and attributes.status = 'FINISHED' "
                              f"and tags.`xlingbench.model` = '{name}'")
    rows = {int(r.data.tags["xlingbench.step"]): r.data.metrics for r in runs}
    return sorted(rows.items())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/pud"), help="a folder of parallel <name>.<lang>.tok files")
    parser.add_argument("--out", type=Path, default=Path("tiny-run"), help="the training run's output folder")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--save-steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="tiny-multilingual")
    parser.add_argument("--background", action="store_true", help="evaluate each checkpoint in a background process")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"skipped: {args.data} is absent (pass --data, a folder of parallel .tok files such as PUD)")
        return 0
    import mlflow
    import transformers

    from xlingbench.training import XlingbenchCallback

    transformers.logging.set_verbosity_error()  # its LOAD REPORT of the MLM head a task does not read
    transformers.logging.disable_progress_bar()
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    callback = XlingbenchCallback(
        tasks=["script_separability", "neighbour_script_count", "calign"], background=args.background,
        options={"data": str(args.data), "languages": ",".join(PAIR), "seed": args.seed},
        overrides=["script_separability.min_tokens=100", "neighbour_script_count.sample=0.2",
                   "calign.k=50", "calign.n_init=1", "calign.sentences=500"])
    train(args.out, args.data, steps=args.steps, save_steps=args.save_steps, seed=args.seed, callbacks=(callback,), report_to="mlflow")
    columns = ("script_separability/accuracy", "neighbour_script_count/mean_count", "calign/calign_max")
    print("| step | " + " | ".join(columns) + " |\n|---:|" + "---:|" * len(columns))
    for step, metrics in table(args.tracking_uri, args.experiment, args.out.resolve().name):
        print(f"| {step} | " + " | ".join(f"{metrics.get(c, float('nan')):.4f}" for c in columns) + " |")
    print(f"Browse: mlflow ui --backend-store-uri {args.tracking_uri} (experiment {args.experiment}: the training run's "
          "charts hold the loss and each headline by step)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
