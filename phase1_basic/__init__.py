"""Phase 1: FastAPI and SQLite, with the work run by FastAPI's BackgroundTasks."""
