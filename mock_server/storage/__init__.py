"""``--data-dir`` and archives: the SQLite schema, the state as rows and back, the dataclasses as JSON,
the store that keeps a data dir in step, a namespace as one portable file."""
