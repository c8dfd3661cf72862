"""Phase 2: RQ over Redis. The API only enqueues; a separate worker process runs the tasks."""
