"""Phase 4's monitoring, kept unchanged by every later phase.

Phase 4 taught it: metrics that survive forked work horses and SIGKILLed workers
(:mod:`.metrics`), one structured-log pipeline (:mod:`.logs`), request ids and HTTP metrics
(:mod:`.middleware`), counts per transition (:mod:`.events`), ``GET /stats`` (:mod:`.stats`) and
the live dashboard (:mod:`.dashboard`). Phases 5 and 6 keep a byte-identical copy of this
folder; each phase wires it to its own queues and workers.
"""
