"""The HTTP and S3 toolbox of the checks: probe sessions, error wording, and the verify round
trips (a file through a filer URL, an object through an S3 endpoint) every component's checks use.

Nothing here knows an inventory: callers pass URLs, keys and the region (``storagectl.endpoints``
computes them).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from storagectl.checks.base import CheckContext, CheckResult

USER_AGENT = "storagectl-verify"
VERIFY_BUCKET = "storagectl-verify"
VERIFY_DIR = "/storagectl-verify"
DEFAULT_REGION = "us-east-1"
"""The region signed for by servers that have no region setting of their own (RustFS's default);
the SeaweedFS gateways sign for ``seaweedfs_s3_region``."""


def http_error(exc: requests.RequestException) -> str:
    """A short operator-facing description of a failed HTTP request."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or unreachable"
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


def http_session() -> requests.Session:
    """A session for probes: our User-Agent, and never the environment's HTTP proxy."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.trust_env = False  # never send cluster probes through an HTTP proxy
    return session


VISIBLE_WITHIN = 5.0
"""Seconds a file written through one filer may take to show up on another: filers with their
own stores learn of each other's writes through metadata aggregation, asynchronously."""


def payload() -> bytes:
    """64 KiB plus up to 64 KiB of random bytes (so chunking and sizes vary between runs)."""
    return os.urandom(64 * 1024 + int.from_bytes(os.urandom(2), "big"))


def size(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def visible_within(ctx: CheckContext) -> float:
    """How long a read through another filer retries a 404: VISIBLE_WITHIN, less on a short
    task budget so the check still reports the 404 itself."""
    return min(VISIBLE_WITHIN, max(1.0, ctx.timeout / 3))


@dataclass
class FilerTransfer:
    """One verify file PUT through a filer URL, read back through another (or the same), deleted.

    ``failed`` names the step that went wrong (``PUT``, ``GET``, ``compare`` or ``DELETE``; empty
    when every step worked) and ``detail`` says how; ``status`` is that step's HTTP status when
    there was an answer. ``waited`` is how long the reading URL took to serve the file.
    """

    size: int
    failed: str = ""
    detail: str = ""
    status: int | None = None
    waited: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def spent(self) -> str:
        """``PUT 12 ms, GET 3 ms, DELETE 2 ms``."""
        return ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in self.timings.items())

    def fail(self, step: str, detail: str, status: int | None = None) -> None:
        self.failed, self.detail, self.status = step, detail, status


def _get_when_visible(
    session: requests.Session, url: str, ctx: CheckContext, within: float
) -> tuple[requests.Response, float]:
    """GET ``url``, retrying a 404 for up to ``within`` seconds: (last answer, seconds waited)."""
    start = time.monotonic()
    pause = 0.05
    while True:
        response = session.get(url, timeout=ctx.http_timeout)
        waited = time.monotonic() - start
        if response.status_code != 404 or waited + pause > within:
            return response, waited
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def delete(
    session: requests.Session, url: str, ctx: CheckContext, timings: dict[str, float]
) -> str:
    """DELETE ``url``: an empty string when it worked, else what went wrong."""
    start = time.monotonic()
    try:
        response = session.delete(url, timeout=ctx.http_timeout)
    except requests.RequestException as exc:
        return http_error(exc)
    timings["DELETE"] = time.monotonic() - start
    return "" if response.status_code in (200, 202, 204) else f"HTTP {response.status_code}"


def _put_and_read(
    session: requests.Session,
    write_url: str,
    read_url: str,
    *,
    data: bytes,
    ctx: CheckContext,
    within: float,
    outcome: FilerTransfer,
) -> None:
    step = "PUT"
    try:
        start = time.monotonic()
        response = session.put(write_url, data=data, timeout=ctx.http_timeout)
        outcome.timings["PUT"] = time.monotonic() - start
        if response.status_code not in (200, 201):
            answer = response.text[:120].strip()
            outcome.fail(
                "PUT",
                f"PUT {size(len(data))}: HTTP {response.status_code} {answer}".rstrip(),
                response.status_code,
            )
            return
        step = "GET"
        start = time.monotonic()
        response, outcome.waited = _get_when_visible(session, read_url, ctx, within)
        outcome.timings["GET"] = time.monotonic() - start
        if response.status_code != 200:
            retried = response.status_code == 404 and within > 0
            still = f", still after {outcome.waited:.1f} s of retries" if retried else ""
            outcome.fail(
                "GET", f"GET after PUT: HTTP {response.status_code}{still}", response.status_code
            )
            return
        got = response.content
        if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
            outcome.fail(
                "compare",
                f"read back {size(len(got))} differing from the {size(len(data))} written",
            )
    except requests.RequestException as exc:
        outcome.fail(step, f"{step}: {http_error(exc)}")


def filer_transfer(
    write_url: str,
    read_url: str,
    ctx: CheckContext,
    *,
    within: float = 0.0,
    also_delete: Sequence[str] = (),
    while_stored: Callable[[], None] | None = None,
) -> FilerTransfer:
    """PUT random bytes at ``write_url``, GET them at ``read_url`` (a 404 retried for up to
    ``within`` seconds), compare their sha256, then DELETE ``write_url``.

    ``while_stored`` is called once the file has been read back identical, before it is deleted
    (to look at where the filer keeps it); it is not called when an earlier step failed.

    HTTP trouble never raises: the outcome names the step that failed and how. The file is
    deleted whatever happened; a failed DELETE is reported only when everything else worked.
    ``also_delete`` are URLs of the same file on each filer, deleted afterwards without
    judging the answers: behind a load balancer the DELETE may reach a filer that has not seen
    the file yet, which answers 204 and changes nothing, so the writer must be told directly.
    """
    data = payload()
    outcome = FilerTransfer(size=len(data))
    with http_session() as session:
        try:
            _put_and_read(
                session, write_url, read_url, data=data, ctx=ctx, within=within, outcome=outcome
            )
            if outcome.ok and while_stored is not None:
                while_stored()
        finally:
            deleted = delete(session, write_url, ctx, outcome.timings)
            for url in also_delete:
                delete(session, url, ctx, {})
    if outcome.ok and deleted:
        outcome.fail("DELETE", f"wrote and read {size(len(data))} but DELETE failed: {deleted}")
    return outcome


#: One boto3 session for every S3 client of the process, created on first use: a session loads
#: the S3 service model (~0.1 s of CPU), so one session per client made verify's S3 checks slow
#: each other down. Sessions are not thread-safe, clients are: clients are created under the lock.
_S3_SESSION: list[Any] = []
_S3_SESSION_LOCK = threading.Lock()


def s3_client(
    endpoint: str, access_key: str, secret_key: str, ctx: CheckContext, *, region: str
) -> Any:
    """A boto3 S3 client for one endpoint signing for ``region``: path-style, short timeouts,
    few retries."""
    # boto3 is imported on first use, inside a check, so a verify without S3 endpoints (and the
    # start of every verify) does not pay for it.
    import boto3
    from botocore.config import Config

    connect, read = ctx.http_timeout
    config = Config(
        s3={"addressing_style": "path"},
        connect_timeout=connect,
        read_timeout=read,
        retries={"max_attempts": 2, "mode": "standard"},
        user_agent_extra=USER_AGENT,
        signature_version="s3v4",
    )
    with _S3_SESSION_LOCK:
        if not _S3_SESSION:
            _S3_SESSION.append(boto3.session.Session())
        return _S3_SESSION[0].client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )


_AUTH_ERRORS = frozenset(
    {"AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "403", "401", "Forbidden"}
)


def _create_verify_bucket(client: Any) -> None:
    """Create the verify bucket; another check creating it at the same moment is fine."""
    from botocore.exceptions import ClientError

    try:
        client.create_bucket(Bucket=VERIFY_BUCKET)
    except ClientError as exc:
        code = error_code(exc)
        if code == "NoSuchBucket":
            # Two gateways creating the bucket at once (the checks run concurrently on a fresh
            # cluster): the loser can answer NoSuchBucket while the winner's bucket appears. It
            # exists when a HEAD says so shortly after.
            time.sleep(0.5)
            client.head_bucket(Bucket=VERIFY_BUCKET)
        elif code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


#: The S3 operation of each timed step, for messages.
_STEP_NAMES = {"PUT": "PutObject", "GET": "GetObject", "DELETE": "DeleteObject"}


def _get(client: Any, key: str) -> bytes:
    return bytes(client.get_object(Bucket=VERIFY_BUCKET, Key=key)["Body"].read())


def _ensure_verify_bucket(client: Any) -> None:
    """HEAD the verify bucket; create it when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=VERIFY_BUCKET)
    except ClientError as exc:
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
        _create_verify_bucket(client)


def s3_transfer(
    endpoint: str,
    access_key: str,
    secret_key: str,
    ctx: CheckContext,
    *,
    check: str = "s3 round trip",
    component: str = "seaweedfs",
    service_fix: str,
    keys_of: str = "this host",
    key_vars: tuple[str, str] = ("seaweedfs_s3_access_key", "seaweedfs_s3_secret_key"),
    region: str = DEFAULT_REGION,
) -> CheckResult:
    """Through the S3 endpoint ``endpoint``: create the verify bucket if missing, PUT an object,
    GET it back byte-identical, DELETE it. Returns the result named ``check``.

    ``service_fix`` is the fix for failures that are not the keys' fault (what to look at behind
    ``endpoint``); ``keys_of`` names whose keys these are, for the message when they are unset;
    ``key_vars`` the inventory variables holding them; ``region`` the region to sign for.
    """
    access_var, secret_var = key_vars
    if not access_key or not secret_key:
        return CheckResult(
            check,
            component,
            False,
            f"{access_var} / {secret_var} are not set for {keys_of}",
            fix=f"Set {access_var} and {secret_var} in the inventory (vault).",
        )
    client = s3_client(endpoint, access_key, secret_key, ctx, region=region)
    from botocore.exceptions import BotoCoreError, ClientError  # loaded by s3_client

    key = f"{uuid.uuid4().hex}.bin"
    data = payload()
    timings: dict[str, float] = {}
    step = "HeadBucket"

    def timed(name: str, call: Callable[[], Any]) -> Any:
        nonlocal step
        step = name
        start = time.monotonic()
        answer = call()
        timings[name if name != "HeadBucket" else "bucket"] = time.monotonic() - start
        return answer

    try:
        timed("HeadBucket", lambda: _ensure_verify_bucket(client))
        timed("PUT", lambda: client.put_object(Bucket=VERIFY_BUCKET, Key=key, Body=data))
        got = timed("GET", lambda: _get(client, key))
        timed("DELETE", lambda: client.delete_object(Bucket=VERIFY_BUCKET, Key=key))
    except ClientError as exc:
        code = error_code(exc)
        fix = service_fix
        if code in _AUTH_ERRORS:
            fix = (
                f"The gateway rejected the configured keys: make {access_var}/{secret_var} "
                "match an identity of the S3 config (with Admin for "
                f"CreateBucket, or pre-create bucket {VERIFY_BUCKET})."
            )
        detail = f"{exc.operation_name}: {code}: {error_message(exc)}"
        return CheckResult(check, component, False, detail, fix=fix)
    except BotoCoreError as exc:
        detail = f"{_STEP_NAMES.get(step, step)}: {exc}"
        return CheckResult(check, component, False, detail, fix=service_fix)
    finally:
        client.close()
    if got != data:
        return CheckResult(
            check,
            component,
            False,
            f"GetObject returned {size(len(got))} differing from the {size(len(data))} written",
            fix="Data corruption between gateway, filer and volume servers: check their logs.",
        )
    spent = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())
    return CheckResult(
        check,
        component,
        True,
        f"s3://{VERIFY_BUCKET}/{key}: {size(len(data))} put, read back identical, deleted; {spent}",
    )


def error_code(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Code") or "")


def error_message(exc: Any) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    return str(error.get("Message") or exc)
