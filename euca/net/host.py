"""Making the host match a rendered ``Desired``, atomically and only where it differs.

- iptables: one ``iptables-restore --noflush`` for the filter, nat and mangle tables' changed chains (a
  declared chain is flushed and refilled in the same transaction, so no packet sees half a
  chain), stale ones deleted in it too; the jumps from the built-in chains are checked once.
- ipset: one ``ipset restore`` that builds each changed set under a temporary name, swaps it in
  and destroys the old contents; sets nobody references any more are destroyed afterwards.
- the bridge table: replaced whole with one ``nft -f`` (its pairs are set elements, so a thousand
  instances are one short script), alongside iptables' restore.
- links: bridges, their gateway addresses, and MANAGED's segments (802.1q or VXLAN uplinks); IPv4
  forwarding on wherever a bridge has a gateway; the public addresses NATed here on the public
  interface, labelled as ours.

What was applied last is kept, so an unchanged view runs nothing and a changed one reads nothing
from the host. After a restart nothing is kept: the first apply reads what our chains and sets are
on the host, replaces them whole and deletes the stale ones, which leaves the host exactly as the
previous agent left it. In SYSTEM mode a fresh agent touches nothing at all.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from euca.net.render import JUMPS, OURS, Desired, Segment, bridge_filter_removal, restore_text

log = logging.getLogger("euca.net")

# argv, stdin -> stdout; raises CommandError
Run = Callable[[Sequence[str], str], str]


class CommandError(RuntimeError):
    pass


def run_command(prefix: Sequence[str] = ()) -> Run:
    """Commands on this host (or, with ``prefix`` like ``ip netns exec NS``, somewhere else)."""
    def run(argv: Sequence[str], stdin: str = "") -> str:
        done = subprocess.run([*prefix, *argv], input=stdin, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise CommandError(f"{' '.join(argv[:4])}: {done.stderr.strip()[:500]}")
        return done.stdout
    return run


@dataclass
class Applied:
    filter: dict[str, list[str]] = field(default_factory=dict)
    nat: dict[str, list[str]] = field(default_factory=dict)
    mangle: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bridge_filter: str | None = None  # None: unknown (not read after a restart)
    links: tuple[object, ...] | None = None


def _ours(name: str) -> bool:
    return name.startswith(OURS)


class Host:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.saved_jumps: set[tuple[str, str, str]] = set()  # (table, chain, target) found by _read
        self.hooked: set[str] = set()  # tables whose built-in chains jump to ours
        self.applied: Applied | None = None  # None: not yet read from the host
        self.commands = 0  # how many commands the last apply ran

    def _call(self, argv: Sequence[str], stdin: str = "") -> str:
        self.commands += 1
        return self.run(argv, stdin)

    def _read(self) -> Applied:
        """What our chains and sets are on the host now (after a restart: the previous agent's)."""
        found = Applied()
        tables = {"filter": found.filter, "nat": found.nat, "mangle": found.mangle}
        chains: dict[str, list[str]] = {}
        self.saved_jumps = set()
        table = ""
        for line in self._call(["iptables-save"]).splitlines():
            if line.startswith("*"):
                table = line[1:]
                chains = tables.get(table, {})
            elif line.startswith(":") and _ours(line[1:].split()[0]):
                chains.setdefault(line[1:].split()[0], ["<unknown>"])
            elif line.startswith("-A ") and line.count(" ") == 3 and " -j " in line:
                parts = line.split()
                self.saved_jumps.add((table, parts[1], parts[3]))
        for name in self._call(["ipset", "list", "-n"]).split():
            if _ours(name):
                found.sets[name] = ("<unknown>",)
        return found

    def apply(self, desired: Desired) -> bool:
        """Make the host match; True if anything had to change."""
        self.commands = 0
        if self.applied is None and desired.mode == "SYSTEM":
            return False  # the cloud leaves this host's network alone, and so does a fresh agent
        first = self.applied is None
        was = self._read() if self.applied is None else self.applied
        changed = False
        # the bridge table is another subsystem: it is installed while the sets and iptables are
        bridge = None
        if desired.bridge_filter != was.bridge_filter:
            if desired.bridge_filter:
                bridge = _Background(self._call, ["nft", "-f", "-"], desired.bridge_filter)
            else:
                try:
                    self._call(["nft", "-f", "-"], bridge_filter_removal())
                except (CommandError, OSError):
                    if not first:  # after a restart there may be no table, or no nft, to remove
                        raise
            changed = True
        # sets before rules: rules can only name sets that exist
        set_changes = [(n, m) for n, m in desired.sets.items() if was.sets.get(n) != m]
        if set_changes:
            self._call(["ipset", "restore"], _set_script(set_changes))
            changed = True
        script = ""
        for table, want, have in (("filter", desired.filter, was.filter), ("nat", desired.nat, was.nat),
                                  ("mangle", desired.mangle, was.mangle)):
            chains = {c: rules for c, rules in want.items() if have.get(c) != rules}
            stale = [c for c in have if c not in want]
            for builtin, chain in JUMPS[table]:
                if chain in stale:  # the mode stopped enforcing: unhook before deleting
                    with contextlib.suppress(CommandError):
                        self._call(["iptables", "-w", "-t", table, "-D", builtin, "-j", chain])
                    self.saved_jumps.discard((table, builtin, chain))
                    self.hooked.discard(table)
            if chains or stale:
                script += restore_text(table, chains, stale)
        if script:
            self._call(["iptables-restore", "-w", "--noflush"], script)
            changed = True
        for table, want in (("filter", desired.filter), ("nat", desired.nat), ("mangle", desired.mangle)):
            if want and table not in self.hooked:
                for builtin, chain in JUMPS[table]:
                    if (table, builtin, chain) not in self.saved_jumps:
                        self._call(["iptables", "-w", "-t", table, "-I", builtin, "1", "-j", chain])
                self.hooked.add(table)
        stale_sets = [n for n in was.sets if n not in desired.sets]
        if stale_sets:
            self._call(["ipset", "restore"], "".join(f"destroy {n}\n" for n in stale_sets))
            changed = True
        if bridge is not None:
            bridge.join()
        links = (tuple(sorted(desired.bridge_addresses.items())), desired.segments, desired.public_addresses)
        if links != was.links:
            self._links(desired)
            changed = True
        self.applied = Applied(dict(desired.filter), dict(desired.nat), dict(desired.mangle), dict(desired.sets),
                               desired.bridge_filter, links)
        return changed

    # --- links --------------------------------------------------------------------------------------

    def _exists(self, dev: str) -> bool:
        try:
            self._call(["ip", "link", "show", "dev", dev])
            return True
        except CommandError:
            return False

    def _links(self, desired: Desired) -> None:
        """Bridges with exactly their gateway addresses; MANAGED's segments made and unmade."""
        want_segments = {s.bridge: s for s in desired.segments}
        for line in self._call(["ip", "-o", "link", "show", "type", "bridge"]).splitlines():
            name = line.split(":")[1].strip().split("@")[0]
            if name.startswith("eucabr") and name[6:].isdigit() and name not in want_segments:
                self._unmake_segment(int(name[6:]))
        for segment in desired.segments:
            self._make_segment(segment)
        if any(desired.bridge_addresses.values()):
            # a gateway on a bridge routes its instances' packets: to the metadata service, out, in
            self._call(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for bridge, addresses in desired.bridge_addresses.items():
            if not self._exists(bridge):
                self._call(["ip", "link", "add", bridge, "type", "bridge", "stp_state", "0", "forward_delay", "200"])
            self._call(["ip", "link", "set", bridge, "up"])
            have = set()
            for line in self._call(["ip", "-o", "-4", "addr", "show", "dev", bridge]).splitlines():
                fields = line.split()
                have.add(fields[fields.index("inet") + 1])
            for address in sorted(set(addresses) - have):
                self._call(["ip", "addr", "add", address, "dev", bridge])
            for address in sorted(have - set(addresses)):
                self._call(["ip", "addr", "del", address, "dev", bridge])
        if desired.public_addresses is not None:
            self._public(*desired.public_addresses)

    def _public(self, device: str, label: str, addresses: tuple[str, ...]) -> None:
        """Exactly ``addresses`` under ``label`` on ``device``; addresses without the label are not ours."""
        have = set()
        for line in self._call(["ip", "-o", "-4", "addr", "show", "dev", device, "label", label]).splitlines():
            fields = line.split()
            have.add(fields[fields.index("inet") + 1])
        for address in sorted(set(addresses) - have):
            self._call(["ip", "addr", "add", address, "dev", device, "label", label])
        for address in sorted(have - set(addresses)):
            self._call(["ip", "addr", "del", address, "dev", device, "label", label])

    def _make_segment(self, s: Segment) -> None:
        if not self._exists(s.uplink):
            if s.uplink.startswith("vx"):
                host = self.segment_settings
                argv = ["ip", "link", "add", s.uplink, "type", "vxlan", "id", str(s.vlan), "dstport", "4789",
                        "dev", host[0]]
                if host[1]:
                    argv += ["local", host[1]]
                self._call(argv)
                for remote in host[2]:
                    self._call(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", s.uplink, "dst", remote])
            else:
                parent = s.uplink.rsplit(".", 1)[0]
                self._call(["ip", "link", "add", "link", parent, "name", s.uplink, "type", "vlan", "id", str(s.vlan)])
        if not self._exists(s.bridge):
            self._call(["ip", "link", "add", s.bridge, "type", "bridge", "stp_state", "0", "forward_delay", "200"])
        self._call(["ip", "link", "set", s.uplink, "master", s.bridge, "up"])

    def _unmake_segment(self, vlan: int) -> None:
        for dev in (f"vx{vlan}", f"{self.segment_settings[0]}.{vlan}", f"eucabr{vlan}"):
            if self._exists(dev):
                self._call(["ip", "link", "del", dev])

    # (private interface, VXLAN local address, VXLAN remotes): set by the agent from its HostConfig
    segment_settings: tuple[str, str, tuple[str, ...]] = ("eth0", "", ())


class _Background:
    """A command run in a thread; ``join`` re-raises its failure."""

    def __init__(self, call: Callable[[Sequence[str], str], str], argv: list[str], stdin: str) -> None:
        self.error: BaseException | None = None

        def work() -> None:
            try:
                call(argv, stdin)
            except BaseException as exc:  # handed to join
                self.error = exc
        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def _set_script(changes: list[tuple[str, tuple[str, ...]]]) -> str:
    """Each set built under a temporary name and swapped in: a reader sees the old members or the new."""
    lines = []
    for name, members in changes:
        temp = f"{name[:26]}.new"
        lines += [f"create {temp} hash:ip -exist", f"flush {temp}", *(f"add {temp} {ip}" for ip in members),
                  f"create {name} hash:ip -exist", f"swap {temp} {name}", f"destroy {temp}"]
    return "\n".join(lines) + "\n"
