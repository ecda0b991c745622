"""The lab: real sshd hosts with real dpkg/apt on loopback addresses (see lab-recipe.md)."""
