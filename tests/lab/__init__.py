"""The lab: real sshd hosts with real dpkg/apt on loopback addresses (docs/ssh.md, "The lab")."""
