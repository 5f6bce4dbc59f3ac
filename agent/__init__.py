"""The RAG agent service: perception -> decision -> execution behind a FastAPI API.

Layout follows the architecture: `config` (one Settings class), `embeddings` (the encoder),
`chunking`, `stores/` (Milvus vectors, Redis sessions), `perception`, `decision`, `execution`,
`generation`, `plugins/` (tools), `api/` (routers and the app factory), `observability`.
"""

__version__ = "0.1.0"
