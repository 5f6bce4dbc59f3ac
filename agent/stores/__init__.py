"""Storage adapters: Milvus for chunks and vectors, Redis for sessions and rate limits."""
