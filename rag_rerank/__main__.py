"""``python -m rag_rerank``: the ``rag-rerank`` command."""

from .cli import main

raise SystemExit(main())
