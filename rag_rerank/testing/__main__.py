"""``python -m rag_rerank.testing DIR``: write the tiny test models under DIR."""

import sys

from . import main

sys.exit(main())
