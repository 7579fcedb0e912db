"""``rag-rerank demo``: the shipped demo corpus, vector-store order next to reranked order."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING

from ..errors import ModelLoadError
from .option_flags import add_model_options, load_reranker, reranker_options
from .options import add_selection_options, non_empty
from .output import console, error, model_line

if TYPE_CHECKING:
    from .options import Subparsers

__all__ = ["add_demo"]


def add_demo(subparsers: Subparsers) -> None:
    """Register ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="index the shipped demo corpus and compare retrieval order with reranked order",
        description="Index the demo corpus shipped with the package (250-odd passages with "
        "keyword traps such as Apple the company vs apples the fruit), ask its questions, and "
        "show the vector store's order next to the reranked order.",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="persistent Chroma folder to index into (default: in memory, gone after the run)",
    )
    parser.add_argument(
        "--question",
        action="append",
        type=non_empty,
        default=None,
        help="ask this instead of the built-in questions (repeatable)",
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="rerank with a demo reranker trained here, offline, from the embedding model and "
        "the demo corpus (up to 3 minutes on 2 CPU cores the first time, then cached; Ctrl-C "
        "and a rerun resume); instead of --model",
    )
    add_selection_options(parser, k=50, top_n=5)
    add_model_options(parser)
    parser.set_defaults(handler=demo)


def demo(args: argparse.Namespace) -> int:
    """Index the demo corpus, ask each question and print both orders side by side."""
    from ..rag import RerankPipeline
    from ..rag.demo import (
        DEMO_COLLECTION,
        index_demo_corpus,
        load_demo_corpus,
        load_demo_questions,
        offline_hint,
        tiny_model_note,
    )
    from ..render import print_comparison, print_demo_summary

    out = console()
    options = reranker_options(args)
    made = ""
    if args.train:
        from ..training.demo import build_demo_reranker, describe, training_plan

        plan = training_plan(device=options.device)
        if plan:
            print(plan, flush=True)  # one line, before the minutes of work (rich would wrap it)
        try:
            folder = build_demo_reranker(device=options.device)  # None: the CPU
        except KeyboardInterrupt:
            print(
                "stopped; the checkpoints are kept: run `rag-rerank demo --train` again to "
                "resume the training",
                file=sys.stderr,
            )
            return 130
        options = dataclasses.replace(options, model=str(folder))
        made = describe(folder)
    try:
        reranker = load_reranker(options)  # a bad model fails before any indexing
    except ModelLoadError:
        hint = offline_hint(options.model)
        if hint is None:
            raise
        error(hint)
        return 2
    out.print(model_line(reranker, parameters=True))
    if made:
        out.print(made)
    note = tiny_model_note(reranker.num_parameters)
    if note:
        out.print(f"[yellow]{note}[/yellow]")
    pipeline = RerankPipeline(
        args.db, collection=DEMO_COLLECTION, reranker=reranker, show_progress=True
    )
    added = index_demo_corpus(pipeline)
    out.print(
        f"demo corpus: {len(load_demo_corpus())} passages, {added} newly embedded, "
        f"{pipeline.count()} chunks in {args.db or 'memory'}\n"
    )
    questions: list[tuple[str, tuple[str, ...]]]
    if args.question:
        questions = [(q, ()) for q in args.question]
    else:
        questions = [(q.question, q.relevant) for q in load_demo_questions()]
    summary = []
    for question, relevant in questions:
        results = pipeline.query(question, k=args.k, top_n=args.top_n, threshold=args.threshold)
        before, after = print_comparison(out, results, relevant, args.top_n or 5)
        summary.append((question, before, after))
    if any(relevant for _, relevant in questions):
        print_demo_summary(out, summary)
    return 0
