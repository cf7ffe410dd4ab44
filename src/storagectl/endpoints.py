"""Every address and URL a client or a check uses, computed once, from the inventory alone.

The rules, in one place:

* A daemon is reached where it binds: ``<component>_bind_address`` for the components that have
  one (HAProxy, Redis, RustFS), else the host's ``storage_address``.
* A wildcard bind (``storage_wildcard_addresses`` in ``group_vars/all``: ``*``, ``0.0.0.0``,
  ``::`` ...) listens everywhere, so clients reach it on the host's ``storage_address``.
* Ports are the roles' port variables; their defaults come from the roles' ``defaults/main.yml``
  through the inventory loader, never from a copy here.
* Clients (AEGIS nodes, JuiceFS, S3 tools) use ``storage_filer_url`` / ``storage_s3_endpoint``
  when the inventory sets them (a VIP or DNS name), else the first HAProxy host's frontend, else
  the first filer or gateway directly (without failover, said in a note).

The roles compute the same addresses in Jinja from the same variables (``roles/juicefs/vars``,
``roles/haproxy/templates``); tests pin the two together.
"""

from __future__ import annotations

from dataclasses import dataclass

from storagectl.inventory import Host, Topology
from storagectl.inventory import groups as G  # noqa: N812 - the group names, short


class EndpointError(Exception):
    """The inventory gives no address for a client endpoint (names the variable and the fix)."""


def host_port(address: str, port: int | str) -> str:
    """``address:port``, with IPv6 literals bracketed."""
    if ":" in address and not address.startswith("["):
        return f"[{address}]:{port}"
    return f"{address}:{port}"


def http_url(address: str, port: int | str) -> str:
    """``http://address:port`` (IPv6 bracketed)."""
    return f"http://{host_port(address, port)}"


def port(host: Host, variable: str) -> int:
    """Port variable ``variable`` of ``host`` (the role default when the inventory is silent)."""
    return int(host.var(variable))


def is_wildcard(host: Host, address: str) -> bool:
    """Whether ``address`` binds every interface (``storage_wildcard_addresses``)."""
    return address in {str(a) for a in host.var("storage_wildcard_addresses")}


def reachable(host: Host, bind_variable: str) -> str:
    """Where clients reach a daemon of ``host`` that binds to ``bind_variable``: that address,
    or the host's storage address when it binds every interface (or is unset)."""
    bind = str(host.var(bind_variable, default="") or "")
    return host.address if is_wildcard(host, bind) else bind


# --- SeaweedFS -------------------------------------------------------------------------------


def weed_port(host: Host, group: str) -> int:
    """The HTTP port of SeaweedFS component ``group`` on ``host`` (``<group>_port``)."""
    return port(host, f"{group}_port")


def weed_address(host: Host, group: str) -> str:
    """``storage_address:port`` of SeaweedFS component ``group`` (how weed names servers)."""
    return host_port(host.address, weed_port(host, group))


def weed_url(host: Host, group: str) -> str:
    """``http://<storage_address>:<port>`` of SeaweedFS component ``group`` on ``host``."""
    return http_url(host.address, weed_port(host, group))


def master_addresses(topology: Topology) -> list[str]:
    """Every master's ``storage_address:port``, in inventory order (``-master=`` of a client)."""
    return [weed_address(m, G.MASTER) for m in topology.group(G.MASTER)]


# --- HAProxy ---------------------------------------------------------------------------------


def haproxy_address(host: Host) -> str:
    """Where clients reach the frontends of HAProxy ``host`` (``haproxy_bind_address``)."""
    return reachable(host, "haproxy_bind_address")


def haproxy_url(host: Host, port_variable: str) -> str:
    """``http://`` URL of the HAProxy frontend on ``port_variable`` (``haproxy_s3_port`` ...)."""
    return http_url(haproxy_address(host), port(host, port_variable))


def haproxy_stats_url(host: Host) -> str:
    """The CSV stats page, on the storage address (never on the client bind)."""
    return http_url(host.address, port(host, "haproxy_stats_port")) + "/stats;csv"


# --- PostgreSQL, Redis, RustFS ---------------------------------------------------------------


def patroni_api_url(host: Host) -> str:
    """``http://<storage_address>:<patroni_restapi_port>`` of a Patroni member."""
    return http_url(host.address, port(host, "patroni_restapi_port"))


def redis_address(host: Host) -> str:
    """``address:redis_port`` of the Redis on ``host``, following ``redis_bind_address``."""
    return host_port(reachable(host, "redis_bind_address"), port(host, "redis_port"))


def sentinel_address(host: Host) -> str:
    """``address:redis_sentinel_port`` of the Sentinel on ``host`` (Redis's bind address)."""
    return host_port(reachable(host, "redis_bind_address"), port(host, "redis_sentinel_port"))


def rustfs_url(host: Host) -> str:
    """``http://address:rustfs_port`` of a RustFS node, following ``rustfs_bind_address``."""
    return http_url(reachable(host, "rustfs_bind_address"), port(host, "rustfs_port"))


def juicefs_meta_url(topology: Topology, client: Host) -> str:
    """The metadata URL JuiceFS ``client`` mounts, without a password (META_PASSWORD holds it):
    the Sentinels of every Redis host when ``redis_sentinel_enabled``, else the first Redis."""
    db = int(client.var("juicefs_meta_db"))
    redis_hosts = topology.group(G.REDIS)
    if not redis_hosts:
        raise EndpointError("the redis group has no host: no JuiceFS metadata server")
    if bool(topology.var("redis_sentinel_enabled")):
        sentinels = ",".join(reachable(h, "redis_bind_address") for h in redis_hosts)
        name = topology.var("redis_sentinel_master_name")
        return f"redis://{name},{sentinels}:{port(redis_hosts[0], 'redis_sentinel_port')}/{db}"
    return f"redis://{redis_address(redis_hosts[0])}/{db}"


# --- what clients are given ------------------------------------------------------------------


@dataclass(frozen=True)
class ClientEndpoint:
    """A URL clients use, and a note for the operator when it bypasses the load balancer."""

    url: str
    note: str = ""


def _client_endpoint(
    topology: Topology, override: str, haproxy_port: str, group: str, what: str
) -> ClientEndpoint:
    value = topology.var(override, default=None)
    if value:
        return ClientEndpoint(str(value).rstrip("/"))
    balancers = topology.group(G.HAPROXY)
    if balancers:
        return ClientEndpoint(haproxy_url(balancers[0], haproxy_port))
    hosts = topology.group(group)
    if not hosts:
        raise EndpointError(
            f"{override}: the inventory has no haproxy host and no {group} host to take the "
            f"{what} URL from. Fix: set {override} (a VIP or DNS name), or put hosts in groups "
            f"haproxy and {group}"
        )
    first = hosts[0]
    return ClientEndpoint(
        weed_url(first, group),
        f"no haproxy host: {what} URL is the first {group} host ({first.name}) directly, "
        f"without failover; set {override} or add an haproxy group",
    )


def filer_url(topology: Topology) -> ClientEndpoint:
    """The filer URL clients use (``storage_filer_url``, else HAProxy's filer frontend)."""
    return _client_endpoint(topology, "storage_filer_url", "haproxy_filer_port", G.FILER, "filer")


def s3_endpoint(topology: Topology) -> ClientEndpoint:
    """The S3 endpoint clients use (``storage_s3_endpoint``, else HAProxy's S3 frontend)."""
    return _client_endpoint(topology, "storage_s3_endpoint", "haproxy_s3_port", G.S3, "S3")


def s3_region(topology: Topology) -> str:
    """The region S3 clients sign with (``seaweedfs_s3_region``)."""
    return str(topology.var("seaweedfs_s3_region"))
