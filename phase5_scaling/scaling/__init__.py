"""Phase 5's scaling, kept unchanged by phase 6.

Phase 5 taught it: five priority queues and the job (:mod:`.jobs`), aging so no level starves
(:mod:`.priorities`), the supervised pool of worker processes (:mod:`.pool`), the status cache
(:mod:`.cache`), and the API and reconciler wired to all of it (:mod:`.api`, :mod:`.reconciler`).
Phase 6 deploys the same system in containers and keeps a byte-identical copy of this folder;
each phase's ``api``, ``worker`` and ``reconciler`` modules are the entry points a reader runs.
"""
