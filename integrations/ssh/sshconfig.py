"""The user's OpenSSH config, read as Fabric reads it, merged with the inventory.

``OpenSshConfig.load(path)`` reads ``~/.ssh/config`` (or ``PATCHGATE_SSH_CONFIG``) with
paramiko's ``SSHConfig`` (``Host`` patterns, ``Match host``, ``%`` tokens, first value
wins), after inlining ``Include`` lines itself (paramiko does not read them): globs,
relative paths from ``~/.ssh``, nested up to 16 levels, as OpenSSH does.

``route(host, config)`` gives the hops to reach an inventory host: the jump hosts first
(``ProxyJump``, several hops, each hop resolved through the config too), the target last.
Inventory values win over the config as in Ansible: ``ansible_host`` is the name the
config is looked up by (Ansible hands it to ``ssh`` as the destination), and
``ansible_user``/``ansible_port``/``ansible_ssh_private_key_file``/the jump host override
``User``/``Port``/``IdentityFile`` (tried first)/``ProxyJump``. Each setting keeps where
it came from (config file:line, inventory variable, default) for ``patchgate ssh check``.

Options that would weaken PatchGate's rules are ignored with a warning naming the host
and option: ``StrictHostKeyChecking no``/``off``/``accept-new`` (host keys stay strict)
and ``ProxyCommand`` (only ``ProxyJump`` is followed).
"""

from __future__ import annotations

import getpass
import glob
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import paramiko

from integrations.ssh.hostkeys import key_name
from workflows.errors import ConfigError, InputError
from workflows.ports import InventoryHost

# The identities OpenSSH tries when no IdentityFile is given (the ones paramiko can use).
DEFAULT_IDENTITIES = ("~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519")
_MAX_INCLUDE_DEPTH = 16
_MAX_HOPS = 8
_WEAKENING = {"stricthostkeychecking": ("no", "off", "accept-new")}


@dataclass(frozen=True)
class Block:
    """One ``Host``/``Match`` block of the (Include-expanded) config, for provenance."""

    lines: tuple[tuple[str, str], ...]  # (text, "file:line")

    def settings(self, name: str) -> dict[str, Any]:
        single = paramiko.SSHConfig()
        single.parse(io.StringIO("".join(text for text, _ in self.lines)))
        return dict(single.lookup(name))


class OpenSshConfig:
    """A parsed OpenSSH client config (``None`` path, or no file: an empty one)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._blocks: list[Block] = []
        self._config = paramiko.SSHConfig()
        if path is None:
            return
        path = path.expanduser()
        if not path.exists():
            return
        lines: list[tuple[str, str]] = []
        self._expand(path, lines, depth=0)
        self._config.parse(io.StringIO("".join(text for text, _ in lines)))
        block: list[tuple[str, str]] = []
        for text, origin in lines:
            words = text.strip().split(None, 1)
            if words and words[0].lower() in ("host", "match") and block:
                self._blocks.append(Block(tuple(block)))
                block = []
            block.append((text, origin))
        self._blocks.append(Block(tuple(block)))

    def _expand(self, path: Path, out: list[tuple[str, str]], *, depth: int) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            raise ConfigError([f"{path}: Include nested more than {_MAX_INCLUDE_DEPTH} deep"])
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read the SSH config ({exc.strerror})"]) from None
        for number, line in enumerate(text.splitlines(), 1):
            words = line.replace("=", " ", 1).split()
            if words and words[0].lower() == "include":
                for pattern in words[1:]:
                    expanded = os.path.expanduser(pattern)
                    if not os.path.isabs(expanded):
                        expanded = os.path.join(os.path.expanduser("~/.ssh"), expanded)
                    for found in sorted(glob.glob(expanded)):
                        self._expand(Path(found), out, depth=depth + 1)
                continue
            out.append((line + "\n", f"{path}:{number}"))

    def lookup(self, name: str) -> dict[str, Any]:
        return dict(self._config.lookup(name))

    def source(self, name: str, option: str, value: object) -> str:
        """The config line (file:line) that gave ``option`` its value for ``name``."""
        for block in self._blocks:
            lines = [
                origin
                for text, origin in block.lines
                if text.strip().replace("=", " ", 1).split(None, 1)[:1]
                and text.strip().replace("=", " ", 1).split(None, 1)[0].lower() == option
            ]
            if lines and block.settings(name).get(option) == value:
                return f"config {lines[0]}"
        return "config"


@dataclass(frozen=True)
class Hop:
    """One SSH login on the way: a jump host or the target."""

    label: str  # the inventory name, or the hop as written in ProxyJump
    address: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    identities_only: bool
    default_identities: bool  # no IdentityFile given: OpenSSH's defaults
    host_key_name: str  # what known_hosts is searched for (HostKeyAlias, or [addr]:port)
    known_hosts_files: tuple[str, ...]  # UserKnownHostsFile (beside PatchGate's store)
    connect_timeout: float | None
    server_alive_interval: int | None
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    target: Hop
    jumps: tuple[Hop, ...]
    warnings: tuple[str, ...]

    @property
    def hops(self) -> tuple[Hop, ...]:
        return (*self.jumps, self.target)


def _inventory_var(host: InventoryHost, *names: str) -> str:
    for name in names:
        if name in host.vars:
            return f"inventory {name}"
    return f"inventory {names[-1]}"


def _warnings(label: str, options: Mapping[str, Any]) -> list[str]:
    found = []
    for option, weak in _WEAKENING.items():
        value = str(options.get(option, "")).lower()
        if value in weak:
            found.append(
                f"{label}: StrictHostKeyChecking {value} in the SSH config is ignored; "
                "PatchGate checks host keys strictly"
            )
    if "proxycommand" in options and str(options["proxycommand"]).lower() != "none":
        found.append(
            f"{label}: ProxyCommand in the SSH config is ignored; PatchGate follows ProxyJump only"
        )
    return found


def _hop(
    label: str,
    lookup_name: str,
    config: OpenSshConfig,
    *,
    user: tuple[str, str] | None = None,
    port: tuple[int, str] | None = None,
    keys: tuple[str, str] | None = None,
    explain: bool = False,
) -> tuple[Hop, dict[str, Any], list[str]]:
    options = config.lookup(lookup_name)
    sources: dict[str, str] = {}

    def from_config(option: str) -> str:
        return config.source(lookup_name, option, options[option]) if explain else "config"

    if options.get("hostname", lookup_name) != lookup_name:  # paramiko fills it in
        addr, sources["hostname"] = options["hostname"], from_config("hostname")
    else:
        addr, sources["hostname"] = lookup_name, "the host's name"
    if user is not None:
        login, sources["user"] = user
    elif "user" in options:
        login, sources["user"] = options["user"], from_config("user")
    else:
        login, sources["user"] = getpass.getuser(), "default (local user)"
    if port is not None:
        number, sources["port"] = port
    elif "port" in options:
        number, sources["port"] = int(options["port"]), from_config("port")
    else:
        number, sources["port"] = 22, "default"
    files: list[str] = []
    if keys is not None:
        files.append(keys[0])
        sources["identityfile"] = keys[1]
    configured = list(options.get("identityfile", []))
    if configured:
        files.extend(f for f in configured if f not in files)
        text = f"{', '.join(configured)} ({from_config('identityfile')})"
        sources["identityfile"] = f"{sources['identityfile']}; {text}" if keys else text
    defaults = not files
    if defaults:
        files = list(DEFAULT_IDENTITIES)
        sources["identityfile"] = "default identities"
    only = str(options.get("identitiesonly", "no")).lower() == "yes"
    if "identitiesonly" in options:
        sources["identitiesonly"] = from_config("identitiesonly")
    alias = options.get("hostkeyalias")
    if alias:
        sources["hostkeyalias"] = from_config("hostkeyalias")
    known = tuple(str(options.get("userknownhostsfile", "")).split())
    if known:
        sources["userknownhostsfile"] = from_config("userknownhostsfile")
    timeout = None
    if "connecttimeout" in options:
        timeout = float(options["connecttimeout"])
        sources["connecttimeout"] = from_config("connecttimeout")
    alive = None
    if "serveraliveinterval" in options:
        alive = int(options["serveraliveinterval"])
        sources["serveraliveinterval"] = from_config("serveraliveinterval")
    hop = Hop(
        label=label,
        address=addr,
        port=number,
        user=login,
        identity_files=tuple(os.path.expanduser(f) for f in files),
        identities_only=only,
        default_identities=defaults,
        host_key_name=alias or key_name(addr, number),
        known_hosts_files=tuple(os.path.expanduser(k) for k in known if k.lower() != "none"),
        connect_timeout=timeout,
        server_alive_interval=alive or None,
        sources=sources,
    )
    return hop, options, _warnings(label, options)


def parse_hop(spec: str) -> tuple[str | None, str, int | None]:
    """``[ssh://][user@]host[:port]`` -> (user, host, port)."""
    spec = spec.strip().removeprefix("ssh://")
    user, _, rest = spec.rpartition("@")
    host, _, port = rest.partition(":")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail.removeprefix(":")
    if not host or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise InputError(f"jump host {spec!r}: expected [user@]host[:port]")
    return user or None, host, int(port) if port else None


def route(host: InventoryHost, config: OpenSshConfig, *, explain: bool = False) -> Route:
    """The hops to ``host``: inventory values first, then the SSH config, then defaults."""
    lookup_name = host.connect_address
    user = None
    if host.user:
        user = (host.user, _inventory_var(host, "ansible_user", "user"))
    port = None
    if host.port != 22 or any(k in host.vars for k in ("ansible_port", "port")):
        port = (host.port, _inventory_var(host, "ansible_port", "port"))
    keys = None
    if host.private_key_file:
        var = _inventory_var(host, "ansible_ssh_private_key_file", "private_key_file")
        keys = (host.private_key_file, var)
    target, options, warnings = _hop(
        host.name, lookup_name, config, user=user, port=port, keys=keys, explain=explain
    )
    if host.address is not None:
        sources = dict(target.sources)
        if sources["hostname"] == "the host's name":
            sources["hostname"] = _inventory_var(host, "ansible_host", "address")
        target = _replace_sources(target, sources)
    if host.jump_host:
        chain, chain_source = (
            host.jump_host,
            _inventory_var(host, "patchgate_jump_host", "ansible_ssh_common_args", "jump_host"),
        )
    elif str(options.get("proxyjump", "none")).lower() != "none":
        chain = str(options["proxyjump"])
        chain_source = (
            config.source(lookup_name, "proxyjump", options["proxyjump"]) if explain else "config"
        )
    else:
        chain, chain_source = "", ""
    jumps = _jumps(host.name, chain, chain_source, config, keys, explain, warnings, depth=0)
    if len(jumps) > _MAX_HOPS:
        raise InputError(f"{host.name}: ProxyJump has more than {_MAX_HOPS} hops")
    return Route(target=target, jumps=tuple(jumps), warnings=tuple(warnings))


def _jumps(
    name: str,
    chain: str,
    chain_source: str,
    config: OpenSshConfig,
    keys: tuple[str, str] | None,
    explain: bool,
    warnings: list[str],
    *,
    depth: int,
) -> list[Hop]:
    """The hops of a ProxyJump list. As OpenSSH (which reaches the first hop with a
    child ``ssh`` reading the config for it), the first hop's own ProxyJump is followed
    too; the later hops' are not (the list says how they are reached)."""
    if depth > _MAX_HOPS:
        raise InputError(f"{name}: ProxyJump loops or has more than {_MAX_HOPS} hops")
    jumps: list[Hop] = []
    for index, spec in enumerate(s for s in chain.split(",") if s.strip()):
        juser, jhost, jport = parse_hop(spec)
        hop, options, hop_warnings = _hop(
            spec.strip(),
            jhost,
            config,
            user=(juser, f"ProxyJump ({chain_source})") if juser else None,
            port=(jport, f"ProxyJump ({chain_source})") if jport else None,
            # The inventory's key also opens the jump hosts (as PatchGate always did).
            keys=keys,
            explain=explain,
        )
        own = str(options.get("proxyjump", "none"))
        if index == 0 and own.lower() != "none":
            own_source = config.source(jhost, "proxyjump", own) if explain else "config"
            jumps.extend(
                _jumps(name, own, own_source, config, keys, explain, warnings, depth=depth + 1)
            )
        jumps.append(_replace_sources(hop, {**hop.sources, "proxyjump": chain_source}))
        warnings.extend(hop_warnings)
    return jumps


def _replace_sources(hop: Hop, sources: Mapping[str, str]) -> Hop:
    return replace(hop, sources=dict(sources))
