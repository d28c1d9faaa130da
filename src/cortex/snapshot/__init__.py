"""Snapshots and backups: ``cortex qdrant snapshot create|list|restore|delete`` and ``cortex qdrant backup``.

* :mod:`.edge_snapshot`: embedded collections as Qdrant shard-snapshot archives (``EdgeShard.unpack_snapshot``).
* :mod:`.server_snapshot`: a server's collection snapshots through qdrant-client.
* :mod:`.backup`: a source as a tar with a sha256 manifest (files) or a lossless Parquet file (stores).
* :mod:`.parquet_format`: that Parquet layout (also ``export --format parquet``).
* :mod:`.commands`: the ``cortex.api`` functions.
"""
