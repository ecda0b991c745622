"""A small in-process SSH server (paramiko's server side) for unit tests of the executor's
connection: real key exchange, host key, public-key auth and session channels on a
loopback socket, with scripted commands:

    say          stdout "out", stderr "err", exit 3
    (after the executor's ``sudo ... -- env LC_ALL=C`` prefix, if any)
    stdin        reads stdin to EOF (recorded in ``stdins``), prints "read N bytes", exit 0
    sudo -S -p 'PROMPT' ...   prints PROMPT on stderr, reads one line (recorded), exit 0;
                 with "nopasswd" in the line it prompts for nothing (records what
                 stdin already holds)
    hang         never answers (for timeouts)
    flood N      N bytes on stdout and N on stderr, interleaved, exit 0
    drop         closes the whole connection without an exit status
    killed       closes the channel with no exit status (as a signal-killed command)
    anything else: exit 0, no output

Every command line received is recorded in ``commands``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko


def keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        timeout=30,
    )
    return path


class _Handler(paramiko.ServerInterface):  # type: ignore[misc]
    def __init__(self, server: TestSshServer) -> None:
        self.server = server

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == self.server.user and key == self.server.client_key
        return int(paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED)

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return int(paramiko.OPEN_SUCCEEDED)
        return int(paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED)

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        line = command.decode()
        self.server.commands.append(line)
        threading.Thread(
            target=self.server.serve_command, args=(channel, line), daemon=True
        ).start()
        return True


class TestSshServer:
    __test__ = False  # not a pytest class

    def __init__(self, work: Path, *, user: str = "ops") -> None:
        self.user = user
        self.host_key_path = keygen(work / "server_host_key")
        self.host_key = paramiko.Ed25519Key.from_private_key_file(str(self.host_key_path))
        self.client_key_path = keygen(work / "client_key")
        self.client_key = paramiko.Ed25519Key.from_private_key_file(str(self.client_key_path))
        self.commands: list[str] = []
        self.stdins: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._transports: list[paramiko.Transport] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key.get_name()} {self.host_key.get_base64()}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(sock)
            transport.add_server_key(self.host_key)
            self._transports.append(transport)
            with contextlib.suppress(Exception):
                transport.start_server(server=_Handler(self))

    def serve_command(self, channel: paramiko.Channel, line: str) -> None:
        # The executor's own prefixes (sudo ... -- env LC_ALL=C) are skipped.
        program = line.rsplit("LC_ALL=C ", 1)[-1]
        word, _, arg = program.partition(" ")
        # paramiko's server answers the exec request after this handler returns; a real
        # sshd never sends output or CLOSE before that answer, so wait for it to go out.
        time.sleep(0.05)
        try:
            if word == "say":
                channel.sendall(b"out\n")
                channel.sendall_stderr(b"err\n")
                channel.send_exit_status(3)
            elif line.startswith("sudo -S -p '") and "nopasswd" not in line:
                # sudo wanting a password: prompt on stderr, read one line from stdin
                prompt = line[len("sudo -S -p '") :].split("'", 1)[0]
                channel.sendall_stderr(prompt.encode())
                data = b""
                while not data.endswith(b"\n") and (chunk := channel.recv(1)):
                    data += chunk
                self.stdins.append(data)
                channel.sendall(b"ran as root\n")
                channel.send_exit_status(0)
            elif line.startswith("sudo -S"):  # a NOPASSWD rule: sudo reads nothing
                time.sleep(0.2)
                self.stdins.append(channel.recv(4096) if channel.recv_ready() else b"")
                channel.send_exit_status(0)
            elif word == "stdin":
                data = b""
                while chunk := channel.recv(4096):
                    data += chunk
                self.stdins.append(data)
                channel.sendall(f"read {len(data)} bytes\n".encode())
                channel.send_exit_status(0)
            elif word == "hang":
                self._stop.wait(30)
                return
            elif word == "flood":
                size = int(arg)
                block = b"x" * 32768
                sent = 0
                while sent < size:
                    channel.sendall(block)
                    channel.sendall_stderr(block)
                    sent += len(block)
                channel.send_exit_status(0)
            elif word == "drop":
                channel.get_transport().close()
                return
            elif word == "killed":
                pass  # no exit status: the channel just closes
            else:
                channel.send_exit_status(0)
            channel.shutdown_write()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for transport in self._transports:
            transport.close()
