"""storagectl: deploy and verify a highly available storage platform with Ansible."""

__version__ = "0.1.0"
