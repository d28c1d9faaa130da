"""Standing up the target: ``setup`` from a collections file, ``health``, and migration metrics."""
