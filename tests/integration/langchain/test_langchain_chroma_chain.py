"""End to end: Chroma (k=50) -> RagRerankRetriever (top 5, threshold) -> prompt -> chat model."""

from __future__ import annotations

import re
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.language_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_rag_rerank import RagRerankRetriever

from rag_rerank import Reranker

QUESTION = "What does the panda eat?"
ANSWER = "Pandas eat bamboo shoots."
LINE = re.compile(r"^\[(?P<id>doc-\d+) \| (?P<source>\S+) \| (?P<score>\S+)\] (?P<text>.*)$")


def format_docs(documents: list[Document]) -> str:
    return "\n".join(
        f"[{d.id} | {d.metadata['source']} | {d.metadata['relevance_score']!r}] {d.page_content}"
        for d in documents
    )


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages each chat model call received."""

    def __init__(self) -> None:
        self.prompts: list[list[Any]] = []

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        self.prompts.extend(messages)


@pytest.mark.parametrize(("cut", "mode"), [("median", "invoke"), ("third", "ainvoke")])
async def test_chroma_rerank_chain(chroma_store, lc_documents, bert_dir, cut, mode) -> None:
    assert len(lc_documents) >= 200
    base = chroma_store.as_retriever(search_kwargs={"k": 50})

    # What the chain should put in the prompt, computed independently with the core.
    candidates = base.invoke(QUESTION)
    assert len(candidates) == 50
    assert all(d.id for d in candidates)
    scores = Reranker.shared(bert_dir).score(QUESTION, [d.page_content for d in candidates])
    ranked = sorted(range(50), key=lambda i: -scores[i])
    ranked_scores = [scores[i] for i in ranked]
    if cut == "median":  # about half pass the threshold, then top_n keeps five
        threshold, expected_count = (ranked_scores[24] + ranked_scores[25]) / 2, 5
    else:  # only three pass the threshold
        threshold, expected_count = (ranked_scores[2] + ranked_scores[3]) / 2, 3
    assert ranked_scores[expected_count - 1] > threshold
    expected = [candidates[i] for i in ranked[:expected_count]]

    retriever = RagRerankRetriever(
        base_retriever=base, model=bert_dir, top_n=5, score_threshold=threshold
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer from this context only:\n{context}"), ("human", "{question}")]
    )
    llm = FakeListChatModel(responses=[ANSWER])
    chain = (
        {"context": retriever | format_docs, "question": RunnablePassthrough()}
        | prompt
        | llm
        | StrOutputParser()
    )
    recorder = PromptRecorder()
    config = {"callbacks": [recorder]}
    if mode == "invoke":
        answer = chain.invoke(QUESTION, config=config)
    else:
        answer = await chain.ainvoke(QUESTION, config=config)

    assert answer == ANSWER
    [messages] = recorder.prompts
    system, human = messages
    assert human.content == QUESTION
    header, *lines = system.content.split("\n")
    assert header == "Answer from this context only:"
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    # Exactly the reranked documents, best first, with their metadata and the core's scores.
    assert [m["id"] for m in parsed] == [d.id for d in expected]
    assert [m["text"] for m in parsed] == [d.page_content for d in expected]
    by_id = {d.id: d for d in lc_documents}
    assert [m["source"] for m in parsed] == [by_id[d.id].metadata["source"] for d in expected]
    assert [float(m["score"]) for m in parsed] == pytest.approx(
        [scores[i] for i in ranked[:expected_count]], abs=1e-6
    )
    assert all(float(m["score"]) >= threshold for m in parsed)
