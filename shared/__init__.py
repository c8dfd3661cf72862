"""What every phase shares: schema, database, settings, the task catalog and the HTTP basics."""
