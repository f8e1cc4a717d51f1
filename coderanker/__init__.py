"""coderanker: iterative self-training of code generators with a learned reranker."""

__version__ = "0.1.0"
