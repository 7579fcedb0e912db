import numpy as np
import pytest

from rag_rerank import Reranker
from rag_rerank.core.windows import (
    max_per_document,
    query_token_limit,
    truncate_at_token,
    window_overlap,
)
from reference import PlainCrossEncoder


def test_query_limit_is_a_quarter_of_the_window():
    assert query_token_limit(512) == 128
    assert query_token_limit(64) == 16


def test_overlap_stays_below_half_the_smallest_window():
    assert window_overlap(512, 3) == 64
    small = window_overlap(32, 4)
    assert 0 <= small < (32 - 8 - 4) / 2


def test_truncate_at_token_uses_offsets():
    offsets = [(0, 3), (4, 8), (9, 12)]
    assert truncate_at_token("one two2 six", offsets, 2) == "one two2"
    assert truncate_at_token("one two2 six", offsets, 3) == "one two2 six"


def test_max_per_document_takes_the_best_window_and_keeps_nan():
    logits = np.array([0.1, 0.7, -1.0, np.nan, 2.0], dtype=np.float32)
    owner = np.array([0, 0, 1, 2, 2])
    best = max_per_document(logits, owner, 3)
    assert best[0] == pytest.approx(0.7) and best[1] == pytest.approx(-1.0)
    assert np.isnan(best[2])


def _windows_one_by_one(plain, query, document, max_length, overlap):
    """Cut the document into windows by hand and score each alone with a plain forward."""
    tok = plain.tokenizer
    q = tok(query, add_special_tokens=False)["input_ids"]
    d = tok(document, add_special_tokens=False)["input_ids"]
    room = max_length - len(q) - tok.num_special_tokens_to_add(pair=True)
    step = room - overlap
    logits = []
    start = 0
    while True:
        window = d[start : start + room]
        if "token_type_ids" in tok.model_input_names:  # BERT: [CLS] q [SEP] d [SEP]
            ids = [tok.cls_token_id, *q, tok.sep_token_id, *window, tok.sep_token_id]
            types = [0] * (len(q) + 2) + [1] * (len(window) + 1)
        else:  # XLM-R: <s> q </s></s> d </s>
            ids = [tok.bos_token_id, *q, tok.eos_token_id, tok.eos_token_id, *window]
            ids.append(tok.eos_token_id)
            types = None
        logits.append(plain.logit_of_ids(ids, types))
        if start + room >= len(d):
            return logits
        start += step


@pytest.mark.parametrize("family", ["bert_dir", "xlmr_dir"])
def test_long_document_scores_as_its_best_window(family, request):
    folder = request.getfixturevalue(family)
    max_length = 64
    query = "apples"  # short enough that the query itself is never cut
    long_doc = " ".join(
        f"sentence {i} talks about apples, pandas, towers and programming languages."
        for i in range(30)
    )
    rr = Reranker(folder, max_length=max_length)
    plain = PlainCrossEncoder(folder)
    overlap = window_overlap(max_length, plain.tokenizer.num_special_tokens_to_add(pair=True))
    assert len(plain.tokenizer(query)["input_ids"]) < max_length // 4
    windows = _windows_one_by_one(plain, query, long_doc, max_length, overlap)
    assert len(windows) > 3
    [result] = rr.rerank(query, [long_doc])
    assert result.raw_score == pytest.approx(max(windows), abs=1e-5)

    truncating = Reranker(folder, max_length=max_length, long_documents="truncate")
    [first] = truncating.rerank(query, [long_doc])
    assert first.raw_score == pytest.approx(windows[0], abs=1e-5)


def test_long_and_short_documents_share_a_call(bert_dir):
    rr = Reranker(bert_dir, max_length=40)
    plain = PlainCrossEncoder(bert_dir)
    query = "panda bear"
    docs = ["a short one", "word " * 200, "another short passage about bears"]
    scores = rr.score(query, docs)
    assert scores[0] == pytest.approx(plain.score(query, docs[0], 40), abs=1e-5)
    assert scores[2] == pytest.approx(plain.score(query, docs[2], 40), abs=1e-5)
    assert len(scores) == 3
