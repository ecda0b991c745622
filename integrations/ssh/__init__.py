"""The SSH executor (Fabric/paramiko): implements ``workflows.ports.Executor``."""

from integrations.ssh.executor import SshExecutor, SshOptions

__all__ = ["SshExecutor", "SshOptions"]
