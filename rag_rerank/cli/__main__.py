"""``python -m rag_rerank.cli``: the same as the ``rag-rerank`` command."""

from . import main

raise SystemExit(main())
