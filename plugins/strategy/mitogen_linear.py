"""Ansible's linear strategy run over Mitogen (the ``mitogen`` package from PyPI).

Mitogen keeps one Python interpreter per host for the whole run and caches the modules it
has sent, so a task costs a message instead of an SSH command that unpacks and compiles
Ansible's module code again (about 150 ms of target CPU per task and host). Task order,
``changed``, check mode and diffs are the linear strategy's own. ansible.cfg selects it;
``ANSIBLE_STRATEGY=linear`` runs without it.

This file only makes the strategy findable on ``strategy_plugins`` without naming the path of
the installed package (it is the upstream plugin, imported).
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
