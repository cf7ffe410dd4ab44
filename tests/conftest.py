"""Shared fixtures: real SeaweedFS, HAProxy, PostgreSQL (Patroni), Redis and JuiceFS on loopback,
and inventories that describe them. Each cluster's fixtures, classes, helpers and constants live
in a module of ``support`` (tests import what they need from there); this file only makes their
fixtures available to every test.
"""

pytest_plugins = [
    "support.common",
    "support.weed",
    "support.haproxy",
    "support.postgres",
    "support.redis",
    "support.juicefs",
]
