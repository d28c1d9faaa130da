"""Rolling migration: move a collection one unit (workspace, tenant, date range ...) at a time.

A *unit* is a ``--where`` subset of the source (``workspace_id = 'ws-1'``): its own resumable
migration, verified on its own, promoted (its queries go to Qdrant) or reverted on its own.

Piece state, the design shared with partitions (issue 15: "independent pieces of one migration"):

* The whole job is a directory, ``<state dir>/rollouts/<name>/``: ``plan.json`` (written once by
  ``plan``: the source, the split and the list of pieces) and ``units/<piece>.json``, one small
  JSON file per piece (:class:`cortex.rollout.pieces.PieceStore`).
* Each piece file has **one writer at a time**: whoever works on the piece holds its ``flock``
  (``units/<piece>.lock``) and replaces the file atomically (write, fsync, rename;
  :mod:`cortex.atomic_file`), so readers (``status``, the query router) never see a torn file
  and need no lock.
* Pieces share nothing but the target collection: any process (or machine, for a server target)
  can run any piece; the state of the job is the **union** of the piece files.  Merging runs of
  several machines is copying their ``units/`` files together; for the same piece the file with
  the later ``updated`` wins (``PieceStore.merge``).
* A piece's data progress lives in the ordinary migration checkpoint (``state.sqlite``), keyed by
  the piece's ``--where`` text, so a killed piece resumes where it stopped.
"""
