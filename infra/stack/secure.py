"""`kinfer up --secure`: the key material and credentials of a secured local stack, and how
its brokers are configured with them.

Made once into ``<state_dir>/secure`` (mode 0700) and kept: a CA and a broker certificate
for 127.0.0.1 (openssl), a PKCS12 keystore the broker reads, and one random password per
role (Kafka SCRAM users, Redis ACL users), per tenant (SCRAM user and request-signing key).
The CLI finds the credentials there, so `kinfer submit` connects as the default tenant and
`kinfer worker` as the worker role, with nothing to set.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, SecretStr

from kinfer.infra.errors import StackError, ToolMissing
from kinfer.schemas.kafka_client import KafkaSecurity, SaslMechanism

Role = Literal["admin", "admission", "worker", "tuner", "gateway"]
ROLES: tuple[Role, ...] = ("admin", "admission", "worker", "tuner", "gateway")
DEFAULT_TENANT = "default"
SCRAM: SaslMechanism = "SCRAM-SHA-512"


def kafka_user(role: Role) -> str:
    """The Kafka principal (``User:<name>``) and Redis ACL user of a role."""
    return f"kinfer-{role}"


def tenant_user(tenant: str) -> str:
    """The Kafka principal of a tenant's own clients."""
    return f"tenant-{tenant}"


@dataclass(frozen=True)
class BrokerSecurity:
    """A secured node: clients and brokers speak SASL_SSL (SCRAM-SHA-512 users, made after start
    by the admin), controllers SASL_PLAINTEXT on loopback; every request is authorized by
    Kafka's StandardAuthorizer against ACLs, and nothing is allowed without one."""

    keystore: Path
    """PKCS12 keystore holding the broker's key and certificate."""
    keystore_password: str
    ca_file: Path
    """PEM CA that signed the broker certificate (brokers check each other with it)."""
    admin: KafkaSecurity
    """How the super user (``kafka_user("admin")``) connects: a static PLAIN user (SCRAM users live in the
    metadata log, which controllers must reach before any exists)."""

    def properties(self, port: int, controller_port: int) -> list[str]:
        assert self.admin.password is not None
        password = self.admin.password.get_secret_value()
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required "
        admin = kafka_user("admin")
        plain += f'username="{admin}" password="{password}" user_{admin}="{password}";'
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
            "sasl.mechanism.inter.broker.protocol=PLAIN",
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain}",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={plain}",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={self.keystore}",
            f"ssl.keystore.password={self.keystore_password}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.ca_file}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{admin}",
            "allow.everyone.if.no.acl.found=false",
        ]


class TenantSecret(BaseModel):
    password: SecretStr
    """SCRAM password of ``tenant-<name>``."""
    key: SecretStr
    """Request-signing key (hex), as stored for admission in Redis."""


class Credentials(BaseModel):
    """Everything secret `kinfer up --secure` made; the file is readable by its owner only."""

    keystore_password: SecretStr
    roles: dict[str, SecretStr]
    """Password of each role's Kafka SCRAM user and Redis ACL user."""
    tenants: dict[str, TenantSecret]


def _password() -> SecretStr:
    return SecretStr(secrets.token_urlsafe(24))


def new_tenant_secret() -> TenantSecret:
    return TenantSecret(password=_password(), key=SecretStr(secrets.token_hex(32)))


@dataclass(frozen=True)
class SecureFiles:
    """Paths of a secured local stack's material."""

    root: Path

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.crt"

    @property
    def cert_file(self) -> Path:
        """The certificate of 127.0.0.1 (the brokers', and Redis's)."""
        return self.root / "broker.crt"

    @property
    def key_file(self) -> Path:
        return self.root / "broker.key"

    @property
    def keystore(self) -> Path:
        return self.root / "broker.p12"

    @property
    def credentials_file(self) -> Path:
        return self.root / "credentials.json"

    def exists(self) -> bool:
        return self.credentials_file.exists()

    def credentials(self) -> Credentials:
        try:
            return Credentials.model_validate_json(self.credentials_file.read_text())
        except (OSError, ValueError) as exc:
            raise StackError(f"cannot read {self.credentials_file}: {exc}") from exc

    def save(self, creds: Credentials) -> None:
        plain = {
            "keystore_password": creds.keystore_password.get_secret_value(),
            "roles": {k: v.get_secret_value() for k, v in creds.roles.items()},
            "tenants": {
                k: {"password": t.password.get_secret_value(), "key": t.key.get_secret_value()}
                for k, t in creds.tenants.items()
            },
        }
        self.credentials_file.write_text(json.dumps(plain, indent=2))
        self.credentials_file.chmod(0o600)

    def ensure(self) -> Credentials:
        """Make whatever is missing (idempotent) and return the credentials."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        if self.exists():
            creds = self.credentials()
        else:
            creds = Credentials(
                keystore_password=_password(),
                roles={role: _password() for role in ROLES},
                tenants={DEFAULT_TENANT: new_tenant_secret()},
            )
            self.save(creds)
        if not self.keystore.exists():
            self._make_certificates(creds.keystore_password.get_secret_value())
        return creds

    def kafka_security(self, username: str, password: SecretStr) -> KafkaSecurity:
        return KafkaSecurity(
            protocol="SASL_SSL",
            sasl_mechanism=SCRAM,
            username=username,
            password=password,
            ca_file=self.ca_file,
        )

    def admin_security(self) -> KafkaSecurity:
        """The super user, a static PLAIN user of the brokers (see ``BrokerSecurity``)."""
        security = self.kafka_security(kafka_user("admin"), self.credentials().roles["admin"])
        return security.model_copy(update={"sasl_mechanism": "PLAIN"})

    def broker_security(self) -> BrokerSecurity:
        """How each local node is secured with this material."""
        password = self.credentials().keystore_password.get_secret_value()
        return BrokerSecurity(self.keystore, password, self.ca_file, self.admin_security())

    def role_security(self, role: Role) -> KafkaSecurity:
        return self.kafka_security(kafka_user(role), self.credentials().roles[role])

    def tenant_security(self, tenant: str) -> KafkaSecurity:
        secret = self.credentials().tenants.get(tenant)
        if secret is None:
            raise StackError(f"tenant {tenant!r} has no credentials here: `kinfer tenant add {tenant}`")
        return self.kafka_security(tenant_user(tenant), secret.password)

    def _make_certificates(self, store_password: str) -> None:
        """A CA, and a broker certificate it signs for 127.0.0.1 and localhost."""
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ToolMissing("openssl not found; `kinfer up --secure` makes its certificates with it")
        r = self.root
        ext = r / "broker.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        signed_by_ca = "-CA ca.crt -CAkey ca.key -CAcreateserial"
        commands = [
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650"
            " -subj '/CN=kinfer local CA'",
            "req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj /CN=localhost",
            f"x509 -req -in broker.csr {signed_by_ca} -out broker.crt -days 825 -extfile {ext}",
            "pkcs12 -export -in broker.crt -inkey broker.key -certfile ca.crt -name broker -out broker.p12"
            f" -passout pass:{store_password}",
        ]
        steps = [shlex.split(command) for command in commands]
        for step in steps:
            proc = subprocess.run([openssl, *step], cwd=r, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise StackError(f"openssl {step[0]} failed:\n{proc.stderr[-1500:]}")
        for secret in ("ca.key", "broker.key"):
            (r / secret).chmod(0o600)
