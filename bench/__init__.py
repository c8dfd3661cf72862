"""``python -m bench`` (``make bench``): what the chapters claim, measured side by side.

Two parts by default, three more on request, one run, one machine:

* **submit** (:mod:`bench.submit`): ``POST /tasks`` throughput and p50/p99 latency of each
  phase's real uvicorn server under a fixed-concurrency HTTP load on loopback, next to the
  framework's floor measured in the *same* server process (:mod:`bench.floor_app`).
* **drain** (:mod:`bench.drain`): how fast 1, then 2, worker processes of each phase complete N
  no-op tasks, until every row is ``completed`` in the database, with the peak memory of the
  processes (:mod:`bench.memory`); Celery's prefork pool drains the same tasks beside phase 5
  (:mod:`bench.celery_peer`).
* on request, **list** (:mod:`bench.listing`, ``--list-rows``): ``GET /tasks``' queries on a
  seeded table; **stats** (:mod:`bench.stats_query`, ``--stats-rows``): building the ``/stats``
  aggregates from a seeded table, then ``/stats`` itself per window; **dashboards**
  (:mod:`bench.dashboards`, ``--dashboards``): ``POST /tasks`` throughput with dashboards open.

Absolute figures depend on the machine and on what else it runs; the ratios (to the floor, to
one worker) are what carries from one machine to another. :mod:`bench.report` prints both.
"""
