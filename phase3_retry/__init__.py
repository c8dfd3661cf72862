"""Phase 3: retries with backoff, timeouts, dead letters, crash recovery and a reconciler."""
