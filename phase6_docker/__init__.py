"""Phase 6: phase 5's system deployed with Docker Compose, behind API keys and a rate limit."""
