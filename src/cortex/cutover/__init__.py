"""Zero-downtime cutover: incremental ``sync``, aliases, gated ``cutover``, ``rollback``, ``retire``.

The pipeline knows nothing of it: ``migrate`` hands each acknowledged batch to a sink
(:class:`cortex.cutover.sync.MigrateRecorder`) that records per-point content hashes.
"""
