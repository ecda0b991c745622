"""The Ansible backend (issue 19): one ansible-playbook run per batch through
ansible-runner. See docs/ansible.md."""

from integrations.backends.ansible.backend import AnsibleBackend
from integrations.backends.ansible.runs import AnsibleConfig, prune_artifacts

__all__ = ["AnsibleBackend", "AnsibleConfig", "prune_artifacts"]
