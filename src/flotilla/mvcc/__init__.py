"""The v3 keyspace: revisions, ranges, transactions, compaction, leases and watches (a core without I/O)."""
