"""OpenAI embeddings: the route, request parsing, the answer's encoding."""
