"""Phase 4: Prometheus metrics, structured logs with correlation ids, /stats and a live dashboard."""
