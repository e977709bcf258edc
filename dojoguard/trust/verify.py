"""Verification of the central copy alone: every node's chain, and every checkpoint against the node's key.

The store's trigger checks each batch as it arrives; this re-checks
everything afterwards, from the rows as stored, as an auditor would: it needs
only read access to the store (a trust-wide reader account will do), not
the nodes. A record changed in the store (by someone who disabled the
trigger), a record removed from the middle, or a checkpoint that vouches for
another history is found and named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dojoguard.audit import checkpoint as checkpoints
from dojoguard.audit.chain import Break, verify_rows
from dojoguard.trust.central import Central, Node


@dataclass
class NodeCheck:
    node: str
    school: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_break: Break | None = None
    checkpoints: int = 0
    bad_checkpoints: list[str] = field(default_factory=list)
    covered_seq: int = 0          # the newest record a good checkpoint vouches for
    expected_last_seq: int = 0    # where the store's registration says the chain ends

    @property
    def tail(self) -> int:
        """Records after the newest good checkpoint (protected by the chain alone)."""
        return max(0, (self.last_seq or 0) - self.covered_seq)

    @property
    def is_ok(self) -> bool:
        return (self.first_break is None and not self.bad_checkpoints
                and (self.last_seq or self.expected_last_seq) == self.expected_last_seq)

    def summary(self) -> str:
        if self.first_break is not None:
            return f"BROKEN at {self.first_break}"
        if (self.last_seq or self.expected_last_seq) != self.expected_last_seq:
            return (f"BROKEN: the chain ends at record {self.last_seq} but the store registered "
                    f"{self.expected_last_seq} (records were removed from its end)")
        if self.bad_checkpoints:
            return "BROKEN: " + "; ".join(self.bad_checkpoints[:3])
        text = (f"ok: {self.records} records ({self.first_seq}-{self.last_seq}), {self.checkpoints} checkpoints, "
                f"{self.tail} records after the newest")
        if self.first_seq and self.first_seq > 1:
            # Said, not hidden: the chain is checked from there on, and the earlier records are the node's own
            # log's to show (or were removed by `trust purge`, whose cut the store keeps).
            text += f"; the chain starts after record {self.first_seq - 1} (purged, or not shipped)"
        return text


def verify(central: Central, school: str | None = None) -> list[NodeCheck]:
    """Check every node the account may read (of ``school``, when given)."""
    return [verify_node(central, node) for node in central.nodes(school)]


def verify_node(central: Central, node: Node) -> NodeCheck:
    result = NodeCheck(node.node, node.school, expected_last_seq=node.last_seq)
    conn = central.connection
    stored_checkpoints = conn.execute(
        "SELECT seq, hash, record_at, written_at, key_fingerprint, signature FROM checkpoints WHERE node = %s "
        "ORDER BY seq", (node.node,)).fetchall()
    wanted = frozenset(row[0] for row in stored_checkpoints)
    with conn.transaction():
        cursor = conn.cursor(name=f"verify_{abs(hash(node.node))}")
        cursor.arraysize = 4096
        cursor.execute("SELECT seq, id, at, type, body, prev, hash FROM records WHERE node = %s ORDER BY seq",
                       (node.node,))
        chain = verify_rows(cursor, {node.start_seq - 1: node.start_prev}, wanted)
        cursor.close()
    result.records, result.first_seq, result.first_break = chain.records, chain.first_seq, chain.first_break
    result.last_seq = chain.last_seq if chain.is_intact else None
    if chain.records and chain.first_seq != node.start_seq and chain.is_intact:
        result.first_break = Break(chain.first_seq, "?", f"the chain should start at record {node.start_seq}")
    public = checkpoints.load_public_key_pem(node.public_key.encode("ascii"), f"node {node.node}'s key")
    for seq, hash_, record_at, written_at, fingerprint, signature in stored_checkpoints:
        c = checkpoints.Checkpoint(node.log_id, seq, hash_, record_at, written_at, fingerprint, signature)
        if not checkpoints.is_signed_by(c, public):
            result.bad_checkpoints.append(f"checkpoint at record {seq} is not signed by the node's key")
        elif chain.is_intact and chain.hashes.get(seq) != hash_:
            result.bad_checkpoints.append(f"checkpoint at record {seq} vouches for a hash the stored record "
                                          f"{seq} does not have")
        else:
            result.checkpoints += 1
            result.covered_seq = max(result.covered_seq, seq)
    return result
