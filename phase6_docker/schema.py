"""``python -m phase6_docker.schema``: create the tables, indexes and triggers phase 6 needs, if missing.

Compose runs it once before the API and the workers start (``startup`` waits for PostgreSQL
first), so two API replicas never race to create the same table. It is safe to run again:
``create_all`` only adds what is missing, and it never drops or alters a table.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.engine import make_url

from shared.settings import load_settings

from .db import create_db_engine, init_db
from .monitoring import aggregates


def main(argv: list[str] | None = None) -> int:
    """Create the schema in ``DATABASE_URL``'s database and say where, without the password."""
    parser = argparse.ArgumentParser(
        prog="python -m phase6_docker.schema",
        description="Create phase 6's tables and indexes in DATABASE_URL's database if they are missing.",
    )
    parser.parse_args(argv)
    settings = load_settings()
    engine = create_db_engine(settings.database_url)
    try:
        init_db(engine)
        rebuilt = aggregates.install(engine)  # the /stats aggregates: filled from the table if it has rows
    finally:
        engine.dispose()
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"schema ready in {where}" + (" (the /stats aggregates built from the table)" if rebuilt else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
