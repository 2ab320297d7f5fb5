"""A local Redis (Debian's ``redis-server``) on its own loopback port."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
import structlog

from kinfer.infra.errors import ServiceUnreachable, StackError, StartTimeout, ToolMissing
from kinfer.infra.stack.process import ManagedProcess, log_tail, require_free_ports

log = structlog.get_logger(__name__)


def local_url(
    port: int, user: str | None = None, password: str | None = None, ca_file: Path | None = None
) -> str:
    """The URL of a Redis on loopback: ``rediss://`` with the CA to check it by when it speaks
    TLS, with an ACL user when it has users."""
    credentials = f"{user}:{password}@" if user and password else ""
    if ca_file is None:
        return f"redis://{credentials}127.0.0.1:{port}/0"
    return f"rediss://{credentials}127.0.0.1:{port}/0?ssl_ca_certs={ca_file}"


@dataclass(frozen=True)
class RedisTls:
    """TLS only (no plaintext port); clients are not asked for certificates (they log in as ACL users)."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def args(self, port: int) -> list[str]:
        files = ["--tls-cert-file", str(self.cert_file), "--tls-key-file", str(self.key_file)]
        files += ["--tls-ca-cert-file", str(self.ca_file)]
        return ["--port", "0", "--tls-port", str(port), *files, "--tls-auth-clients", "no"]


@dataclass(frozen=True)
class RedisConfig:
    state_dir: Path
    port: int = 16379
    users: dict[str, str] | None = None
    """ACL user -> password (a secured stack): the default user is off, ``kinfer-admin`` may do
    anything, the others anything but administration; None = no authentication."""
    tls: RedisTls | None = None

    @property
    def url(self) -> str:
        ca_file = self.tls.ca_file if self.tls else None
        if self.users:
            return local_url(self.port, "kinfer-admin", self.users["kinfer-admin"], ca_file)
        return local_url(self.port, ca_file=ca_file)

    @property
    def public_url(self) -> str:
        """The address, without credentials (for logs and status)."""
        return without_password(self.url)

    def acl_lines(self) -> list[str]:
        lines = ["user default off"]
        for user, password in (self.users or {}).items():
            allowed = "+@all" if user == "kinfer-admin" else "+@all -@admin"
            lines.append(f"user {user} on >{password} ~* &* {allowed}")
        return lines


def without_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def ping(url: str, timeout_s: float = 1.0) -> None:
    """Raise :class:`ServiceUnreachable` unless Redis at ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ServiceUnreachable(f"Redis at {without_password(url)} is not reachable: {exc}") from exc
    finally:
        client.close()


class RedisServer:
    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self.log_file = config.state_dir / "redis.log"
        self.process = ManagedProcess(
            "redis", config.state_dir / "redis.pid", config.state_dir / "redis.stdout"
        )

    def running(self) -> bool:
        return self.process.pid() is not None

    def start(self, *, timeout_s: float = 20.0) -> None:
        """Idempotent: does nothing when this Redis already runs."""
        if self.running():
            log.info("redis.already_running", url=self.config.public_url)
            return
        binary = shutil.which("redis-server")
        if not binary:
            raise ToolMissing("redis-server not found: run `make setup` or `apt-get install redis-server`")
        require_free_ports({"KINFER_REDIS_PORT": self.config.port})
        data = self.config.state_dir / "redis-data"
        data.mkdir(parents=True, exist_ok=True)
        acl: list[str] = []
        if self.config.users:
            acl_file = self.config.state_dir / "users.acl"
            acl_file.write_text("\n".join(self.config.acl_lines()) + "\n")
            acl_file.chmod(0o600)
            acl = ["--aclfile", str(acl_file)]
        listen = (
            self.config.tls.args(self.config.port) if self.config.tls else ["--port", str(self.config.port)]
        )
        self.process.start(
            [
                binary,
                *acl,
                *listen,
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data),
                "--logfile",
                str(self.log_file),
                "--save",
                "60 1000",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ]
        )
        self._wait_ready(timeout_s)
        log.info("redis.ready", url=self.config.public_url)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.exited():
                raise StackError(f"redis-server exited during start-up:\n{log_tail(self.log_file)}")
            try:
                ping(self.config.url, timeout_s=0.5)
                return
            except ServiceUnreachable:
                if time.monotonic() >= deadline:
                    self.process.stop(timeout_s=5)
                    raise StartTimeout(
                        f"redis-server did not answer within {timeout_s:g}s:\n{log_tail(self.log_file)}"
                    ) from None
                time.sleep(0.1)

    def stop(self, timeout_s: float = 15.0) -> bool:
        return self.process.stop(timeout_s)
