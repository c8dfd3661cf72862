"""Phase 3's recovery machinery, kept unchanged by every later phase.

Phase 3 taught it: retries with backoff (:mod:`.backoff`, :mod:`.attempts`), leases that reveal
a dead attempt in seconds (:mod:`.leases`), the repair of a killed work horse (:mod:`.worker`)
and the reconciler that makes Redis agree with the database again (:mod:`.reconciler`).
Phases 4 to 6 keep a byte-identical copy of this folder (``make carry-forward`` keeps it so);
each phase plugs in only what is its own: its queue, its job function and, from phase 4 on,
the :class:`~recovery.events.TaskEvents` it wants to hear about (metrics, logs).
"""
