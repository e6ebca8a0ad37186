"""The store member: etcd's v2 and v3 APIs on the raft core."""
