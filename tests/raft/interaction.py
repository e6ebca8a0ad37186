"""A small interpreter for golden raft interaction scripts (tests/raft/testdata/*.txt).

A script is a story told in blocks. Each block is a command line (``name arg key=value ...``), optional
input lines, a line ``----``, the expected output, and a blank line. Lines starting with ``#`` between
blocks are the narration. The interpreter plays the application around each ``RawNode``: it persists
Readys into a ``MemoryStorage``, keeps a message queue (the network) and a tiny state machine (the list
of applied values), and prints everything in one stable text format, so a script reads as a trace:

    1->2 APP term=2 log=1/5 commit=5 entries=[2/6 "x"]

means member 1 sends member 2 an append in term 2 whose preceding entry is index 5 of term 1. Entries
print as ``term/index data``; ``log=`` and ``hint=`` are ``term/index`` too.

Commands (ids are member ids; ``(1,2,3)`` is a set):

    add-nodes N voters=(1,2,3) [learners=(4)] [pre-vote=true] [check-quorum=true]
              [election-timeout=10] [heartbeat=1] [max-msg-bytes=..] [max-inflight=..]
        founding members, each starting from bootstrap_snapshot(voters, learners)
    add-nodes N empty [same options]   members that will join later: empty storage
    campaign ID                        start an election now (as if the timer fired)
    tick ID [N]                        N ticks (default 1)
    tick-election ID                   tick until the election timer (a leader: check-quorum) fires
    tick-heartbeat ID                  tick until the heartbeat timer fires
    propose ID DATA                    propose one entry
    propose-conf-change ID add=4 | learner=4 | remove=2
    read-index ID CTX                  ask for a linearizable read point
    transfer-leadership from=ID to=ID  call transfer_leadership(to) on member ``from``
    process-ready ID...                handle one Ready per member, as its contract says
    deliver-msgs [ID...] [type=APP] [drop=(ID,...)]
                                       deliver queued messages to ID (default: everyone), or drop them
    drop-msgs [ID...] [type=HEARTBEAT] drop messages queued for ID (default: all), of one type
    stabilize [ID...]                  process-ready and deliver-msgs until nothing moves
    partition (1) (2 3)                messages between groups are lost when delivered
    heal                               end the partition
    report-snapshot ID to=ID ok|failed tell the leader whether a snapshot got through
    raft-state                         role, term and leader of every member
    status ID                          one member's hard state, membership and (leader) progress
    raft-log ID                        the member's persisted log
    compact ID INDEX                   snapshot the state machine at applied INDEX and compact storage
    restart ID                         rebuild the member from its storage, losing volatile state
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from flotilla.raft import (
    NO_LEADER,
    ConfChange,
    ConfChangeType,
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    RaftError,
    RawNode,
    Ready,
    Role,
    Snapshot,
    bootstrap_snapshot,
)

MT = MessageType

# --- script files ------------------------------------------------------------------------------------


@dataclass
class Block:
    command: str
    input_lines: list[str]
    expected: list[str]
    prelude: list[str] = field(default_factory=list)  # comments and blank lines before the block
    line_number: int = 0


@dataclass
class Script:
    blocks: list[Block]
    trailer: list[str]  # comments after the last block


def parse_script(text: str) -> Script:
    lines = text.splitlines()
    blocks: list[Block] = []
    prelude: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.startswith("#"):
            prelude.append(line)
            i += 1
            continue
        start = i
        command, i = line, i + 1
        input_lines: list[str] = []
        while i < len(lines) and lines[i] != "----":
            input_lines.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"line {start + 1}: command {command!r} has no '----' line")
        i += 1
        expected: list[str] = []
        while i < len(lines) and lines[i].strip():
            expected.append(lines[i])
            i += 1
        i += 1  # the blank line that ends the block
        blocks.append(Block(command, input_lines, expected, prelude, start + 1))
        prelude = []
    return Script(blocks, prelude)


def render_script(script: Script, outputs: list[list[str]]) -> str:
    out: list[str] = []
    for block, output in zip(script.blocks, outputs, strict=True):
        out.extend(block.prelude)
        out.append(block.command)
        out.extend(block.input_lines)
        out.append("----")
        out.extend(output)
        out.append("")
    out.extend(script.trailer)
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n"


def run_file(path: Path) -> tuple[str, str]:
    """Run a script; returns (expected text, actual text) — the whole file, comments included."""
    text = path.read_text()
    script = parse_script(text)
    env = Env()
    outputs = [env.run(block) for block in script.blocks]
    return text, render_script(script, outputs)


# --- arguments ---------------------------------------------------------------------------------------

_TOKEN = re.compile(r'[^\s=()"]+=\([^)]*\)|[^\s=()"]+="[^"]*"|\([^)]*\)|"[^"]*"|\S+')


def _id_set(text: str) -> list[int]:
    inner = text.strip()
    if inner.startswith("(") and inner.endswith(")"):
        inner = inner[1:-1]
    return [int(part) for part in re.split(r"[,\s]+", inner) if part]


@dataclass
class Args:
    positional: list[str]
    named: dict[str, str]

    @classmethod
    def parse(cls, tokens: list[str]) -> Args:
        positional, named = [], {}
        for token in tokens:
            key, sep, value = token.partition("=")
            if sep and not token.startswith(("(", '"')):
                named[key] = value
            else:
                positional.append(token)
        return cls(positional, named)

    def ids(self) -> list[int]:
        return [int(p) for p in self.positional]

    def one_id(self) -> int:
        ids = self.ids()
        if len(ids) != 1:
            raise ValueError(f"expected one member id, got {self.positional}")
        return ids[0]

    def flag(self, key: str, default: bool) -> bool:
        value = self.named.get(key)
        return default if value is None else value == "true"

    def int_opt(self, key: str, default: int | None) -> int | None:
        value = self.named.get(key)
        return default if value is None else int(value)


def _unquote(token: str) -> str:
    return token[1:-1] if len(token) >= 2 and token[0] == token[-1] == '"' else token


# --- rendering ---------------------------------------------------------------------------------------

_CONF_WORDS = {
    ConfChangeType.ADD_NODE: "add",
    ConfChangeType.ADD_LEARNER: "learner",
    ConfChangeType.REMOVE_NODE: "remove",
}


def fmt_ids(ids: frozenset[int] | set[int]) -> str:
    return "(" + ",".join(str(i) for i in sorted(ids)) + ")"


def fmt_conf(cs: ConfState) -> str:
    return f"voters={fmt_ids(cs.voters)} learners={fmt_ids(cs.learners)}"


def fmt_entry(e: Entry) -> str:
    if e.type == EntryType.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        return f"{e.term}/{e.index} conf({_CONF_WORDS[cc.type]}={cc.node_id})"
    return f"{e.term}/{e.index} {json.dumps(e.data.decode())}"


def fmt_entries(entries: list[Entry]) -> str:
    return "[" + ", ".join(fmt_entry(e) for e in entries) + "]"


def fmt_snapshot(s: Snapshot) -> str:
    data = f" data={s.data.decode()}" if s.data else ""
    return f"{s.term}/{s.index} {fmt_conf(s.conf_state)}{data}"


def fmt_message(m: Message) -> str:
    parts = [f"{m.sender}->{m.to} {m.type.name} term={m.term}"]
    t = m.type
    if t == MT.APP:
        parts.append(f"log={m.log_term}/{m.index} commit={m.commit}")
    elif t == MT.APP_RESP:
        parts.append(f"index={m.index}")
        if m.reject:
            parts.append(f"rejected hint={m.log_term}/{m.reject_hint}")
    elif t in (MT.VOTE, MT.PRE_VOTE):
        parts.append(f"log={m.log_term}/{m.index}")
    elif t in (MT.VOTE_RESP, MT.PRE_VOTE_RESP):
        if m.reject:
            parts.append("rejected")
    elif t == MT.HEARTBEAT:
        parts.append(f"commit={m.commit}")
    elif t == MT.SNAP and m.snapshot is not None:
        parts.append(f"snap={fmt_snapshot(m.snapshot)}")
    elif t == MT.READ_INDEX_RESP:
        parts.append(f"index={m.index}")
    if m.entries:
        parts.append(f"entries={fmt_entries(m.entries)}")
    if m.context:
        parts.append(f"ctx={json.dumps(m.context.decode())}")
    return " ".join(parts)


def fmt_leader(leader_id: int) -> str:
    return "none" if leader_id == NO_LEADER else str(leader_id)


# --- the application around one RawNode --------------------------------------------------------------


@dataclass
class NodeOptions:
    pre_vote: bool = True
    check_quorum: bool = True
    election_timeout_ticks: int = 10
    heartbeat_interval_ticks: int = 1
    max_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256


class Node:
    """A member: its storage (durable), its RawNode and state machine (volatile)."""

    def __init__(self, member_id: int, storage: MemoryStorage, options: NodeOptions) -> None:
        self.id = member_id
        self.storage = storage
        self.options = options
        self.start()

    def start(self) -> None:
        """Build the RawNode from storage; the state machine restarts from the stored snapshot and
        raft replays the committed entries after it."""
        o = self.options
        config = Config(
            id=self.id,
            rng=random.Random(self.id),
            election_timeout_ticks=o.election_timeout_ticks,
            heartbeat_interval_ticks=o.heartbeat_interval_ticks,
            max_msg_bytes=o.max_msg_bytes,
            max_inflight_msgs=o.max_inflight_msgs,
            pre_vote=o.pre_vote,
            check_quorum=o.check_quorum,
        )
        self.raw = RawNode(config, self.storage)
        self._restore_state_machine(self.storage.snapshot())

    def _restore_state_machine(self, snap: Snapshot) -> None:
        values = json.loads(snap.data) if snap.data else []
        self.values: list[tuple[int, str]] = [(snap.index, v) for v in values]
        self.conf_history: list[tuple[int, ConfState]] = [(snap.index, snap.conf_state)]
        self.applied = snap.index

    def handle_ready(self, out: list[str], queue: list[Message]) -> None:
        """One Ready, in the order its contract gives: persist, send, apply, advance."""
        rd = self.raw.ready()
        out.append(f"> {self.id} handling Ready")
        _print_ready_head(rd, out)
        if rd.snapshot is not None:
            self.storage.apply_snapshot(rd.snapshot)
        self.storage.append(rd.entries)
        if rd.hard_state is not None:
            self.storage.set_hard_state(rd.hard_state)
        queue.extend(rd.messages)
        queue.extend(rd.messages_after_persist)
        if rd.snapshot is not None:
            self._restore_state_machine(rd.snapshot)
        if rd.committed_entries:
            out.append("  apply:")
        for entry in rd.committed_entries:
            out.append("    " + fmt_entry(entry) + self._apply(entry))
        for rs in rd.read_states:
            out.append(f"  read state: index={rs.index} ctx={json.dumps(rs.request_ctx.decode())}")
        self.raw.advance(rd)

    def _apply(self, entry: Entry) -> str:
        self.applied = entry.index
        if entry.type == EntryType.CONF_CHANGE:
            conf = self.raw.apply_conf_change(ConfChange.decode(entry.data))
            self.conf_history.append((entry.index, conf))
            return f" => {fmt_conf(conf)}"
        if entry.data:
            self.values.append((entry.index, entry.data.decode()))
        return ""

    def compact(self, index: int) -> Snapshot:
        if index > self.applied:
            raise ValueError(f"member {self.id} has applied only up to {self.applied}")
        values = [v for i, v in self.values if i <= index]
        conf = [c for i, c in self.conf_history if i <= index][-1]
        snap = self.storage.create_snapshot(index, conf, json.dumps(values).encode())
        self.storage.compact(index)
        return snap

    def state_line(self) -> str:
        r = self.raw.raft
        if self.id in r.voters:
            kind = "voter"
        elif self.id in r.learners:
            kind = "learner"
        else:
            kind = "not a member"
        return f"{self.id}: {r.role.name} ({kind}) term={r.term} leader={fmt_leader(r.leader_id)}"


def _print_ready_head(rd: Ready, out: list[str]) -> None:
    if rd.soft_state is not None:
        s = rd.soft_state
        out.append(f"  soft state: {s.role.name} leader={fmt_leader(s.leader_id)}")
    if rd.hard_state is not None:
        h = rd.hard_state
        out.append(f"  hard state: term={h.term} vote={fmt_leader(h.vote)} commit={h.commit}")
    if rd.snapshot is not None:
        out.append(f"  snapshot: {fmt_snapshot(rd.snapshot)}")
    if rd.entries:
        out.append("  entries:")
        out.extend("    " + fmt_entry(e) for e in rd.entries)
    if rd.messages:
        out.append("  messages:")
        out.extend("    " + fmt_message(m) for m in rd.messages)
    if rd.messages_after_persist:
        out.append("  messages after persist:")
        out.extend("    " + fmt_message(m) for m in rd.messages_after_persist)


# --- the environment: members, network, commands -----------------------------------------------------


class Env:
    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self.queue: list[Message] = []  # the network, in send order
        self.groups: list[set[int]] | None = None  # a partition, if any

    def run(self, block: Block) -> list[str]:
        tokens = _TOKEN.findall(block.command)
        name, args = tokens[0], Args.parse(tokens[1:])
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"line {block.line_number}: unknown command {name!r}")
        out: list[str] = []
        try:
            handler(args, out)
        except RaftError as e:
            out.append(f"error: {type(e).__name__}: {e}")
        return out or ["ok"]

    def _node(self, member_id: int) -> Node:
        if member_id not in self.nodes:
            raise ValueError(f"no member {member_id}")
        return self.nodes[member_id]

    # --- setup ----------------------------------------------------------------------------------
    def cmd_add_nodes(self, args: Args, out: list[str]) -> None:
        count = int(args.positional[0])
        empty = "empty" in args.positional[1:]
        voters = set(_id_set(args.named.get("voters", "()")))
        learners = set(_id_set(args.named.get("learners", "()")))
        options = NodeOptions(
            pre_vote=args.flag("pre-vote", True),
            check_quorum=args.flag("check-quorum", True),
            election_timeout_ticks=args.int_opt("election-timeout", 10) or 10,
            heartbeat_interval_ticks=args.int_opt("heartbeat", 1) or 1,
            max_msg_bytes=args.int_opt("max-msg-bytes", 1 << 20) or 1 << 20,
            max_inflight_msgs=args.int_opt("max-inflight", 256) or 256,
        )
        for _ in range(count):
            member_id = max(self.nodes, default=0) + 1
            storage = MemoryStorage()
            if not empty:
                storage.apply_snapshot(bootstrap_snapshot(voters, learners))
            node = self.nodes[member_id] = Node(member_id, storage, options)
            r = node.raw.raft
            out.append(
                f"{node.state_line()} commit={r.log.committed} applied={r.log.applied} "
                f"{fmt_conf(r.conf_state())}"
            )

    def cmd_restart(self, args: Args, out: list[str]) -> None:
        node = self._node(args.one_id())
        node.start()
        r = node.raw.raft
        h = node.storage.hard_state
        out.append(
            f"{node.state_line()} vote={fmt_leader(h.vote)} commit={r.log.committed} "
            f"applied={r.log.applied} last={r.log.last_index()} {fmt_conf(r.conf_state())}"
        )

    # --- inputs ---------------------------------------------------------------------------------
    def cmd_campaign(self, args: Args, out: list[str]) -> None:
        self._node(args.one_id()).raw.campaign()

    def cmd_tick(self, args: Args, out: list[str]) -> None:
        member_id, *rest = args.ids()
        for _ in range(rest[0] if rest else 1):
            self._node(member_id).raw.tick()

    def cmd_tick_election(self, args: Args, out: list[str]) -> None:
        node = self._node(args.one_id())
        r = node.raw.raft
        if r.role == Role.LEADER:
            ticks = r.config.election_timeout_ticks - r.election_elapsed
        else:
            ticks = r.randomized_election_timeout - r.election_elapsed
        for _ in range(max(ticks, 1)):
            node.raw.tick()
        out.append(f"{node.id} ticked {max(ticks, 1)} times")

    def cmd_tick_heartbeat(self, args: Args, out: list[str]) -> None:
        node = self._node(args.one_id())
        r = node.raw.raft
        ticks = r.config.heartbeat_interval_ticks
        if r.role == Role.LEADER:
            ticks -= r.heartbeat_elapsed
        for _ in range(max(ticks, 1)):
            node.raw.tick()

    def cmd_propose(self, args: Args, out: list[str]) -> None:
        member_id, data = int(args.positional[0]), _unquote(args.positional[1])
        self._node(member_id).raw.propose(data.encode())

    def cmd_propose_conf_change(self, args: Args, out: list[str]) -> None:
        kinds = {"add": ConfChangeType.ADD_NODE, "learner": ConfChangeType.ADD_LEARNER}
        kinds["remove"] = ConfChangeType.REMOVE_NODE
        ((word, target),) = args.named.items()
        self._node(args.one_id()).raw.propose_conf_change(ConfChange(kinds[word], int(target)))

    def cmd_read_index(self, args: Args, out: list[str]) -> None:
        member_id, ctx = int(args.positional[0]), _unquote(args.positional[1])
        self._node(member_id).raw.read_index(ctx.encode())

    def cmd_transfer_leadership(self, args: Args, out: list[str]) -> None:
        self._node(int(args.named["from"])).raw.transfer_leadership(int(args.named["to"]))

    def cmd_report_snapshot(self, args: Args, out: list[str]) -> None:
        delivered = args.positional[1] == "ok"
        self._node(int(args.positional[0])).raw.report_snapshot(int(args.named["to"]), delivered)

    # --- the Ready loop and the network -----------------------------------------------------------
    def cmd_process_ready(self, args: Args, out: list[str]) -> None:
        for member_id in args.ids():
            node = self._node(member_id)
            if node.raw.has_ready():
                node.handle_ready(out, self.queue)
            else:
                out.append(f"> {member_id} has no Ready")

    def _partitioned(self, a: int, b: int) -> bool:
        if self.groups is None:
            return False
        return not any(a in g and b in g for g in self.groups)

    def _take(self, member_id: int, type_name: str | None = None) -> list[Message]:
        taken = [m for m in self.queue if m.to == member_id and (type_name in (None, m.type.name))]
        self.queue = [m for m in self.queue if not any(m is t for t in taken)]
        return taken

    def _deliver(self, member_id: int, out: list[str], type_name: str | None = None) -> bool:
        msgs = self._take(member_id, type_name)
        if not msgs:
            return False
        out.append(f"> {member_id} receiving messages")
        node = self._node(member_id)
        for m in msgs:
            if self._partitioned(m.sender, m.to):
                out.append(f"  {fmt_message(m)} (lost: partition)")
                continue
            out.append(f"  {fmt_message(m)}")
            try:
                node.raw.step(m)
            except RaftError as e:
                out.append(f"  error: {type(e).__name__}: {e}")
        return True

    def cmd_deliver_msgs(self, args: Args, out: list[str]) -> None:
        if "drop" in args.named:
            for member_id in _id_set(args.named["drop"]):
                for m in self._take(member_id):
                    out.append(f"dropped: {fmt_message(m)}")
            return
        ids = args.ids() or sorted(self.nodes)
        for member_id in ids:
            self._deliver(member_id, out, args.named.get("type"))

    def cmd_drop_msgs(self, args: Args, out: list[str]) -> None:
        ids = args.ids() or sorted({m.to for m in self.queue})
        for member_id in ids:
            for m in self._take(member_id, args.named.get("type")):
                out.append(f"dropped: {fmt_message(m)}")

    def cmd_stabilize(self, args: Args, out: list[str]) -> None:
        ids = args.ids() or sorted(self.nodes)
        for _ in range(1000):
            moved = False
            for member_id in ids:
                node = self._node(member_id)
                if node.raw.has_ready():
                    node.handle_ready(out, self.queue)
                    moved = True
            for member_id in ids:
                moved |= self._deliver(member_id, out)
            if not moved:
                return
        raise AssertionError("stabilize: still busy after 1000 rounds")

    def cmd_partition(self, args: Args, out: list[str]) -> None:
        groups = [set(_id_set(p)) for p in args.positional]
        rest = set(self.nodes) - set().union(*groups)
        if rest:
            groups.append(rest)
        self.groups = groups
        out.append("partition: " + " | ".join(fmt_ids(g) for g in groups))

    def cmd_heal(self, args: Args, out: list[str]) -> None:
        self.groups = None

    # --- inspection -----------------------------------------------------------------------------
    def cmd_raft_state(self, args: Args, out: list[str]) -> None:
        for member_id in sorted(self.nodes):
            out.append(self.nodes[member_id].state_line())

    def cmd_status(self, args: Args, out: list[str]) -> None:
        node = self._node(args.one_id())
        st = node.raw.status()
        h = st.hard_state
        out.append(node.state_line())
        out.append(
            f"hard state: term={h.term} vote={fmt_leader(h.vote)} commit={h.commit} "
            f"applied={st.applied} last={st.last_index}"
        )
        out.append(fmt_conf(st.conf_state))
        values = [v for _, v in node.values]
        out.append(f"state machine: applied={node.applied} values={json.dumps(values)}")
        for member_id, pr in sorted(st.progress.items()):
            learner = " learner" if pr.is_learner else ""
            out.append(f"progress {member_id}: {pr.state} match={pr.match} next={pr.next}{learner}")

    def cmd_raft_log(self, args: Args, out: list[str]) -> None:
        storage = self._node(args.one_id()).storage
        out.append(f"snapshot: {fmt_snapshot(storage.snapshot())}")
        first, last = storage.first_index(), storage.last_index()
        entries = storage.entries(first, last + 1) if last >= first else []
        out.extend(fmt_entry(e) for e in entries)
        if not entries:
            out.append("no entries")

    def cmd_compact(self, args: Args, out: list[str]) -> None:
        member_id, index = args.ids()
        self._node(member_id).compact(index)
        self.cmd_raft_log(Args([str(member_id)], {}), out)
