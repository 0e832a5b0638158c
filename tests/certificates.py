"""Throw-away TLS material for the tests: a private CA, a server certificate and a client
certificate, made with the ``openssl`` command line in a directory the caller owns.

Nothing here is ever committed: every test session generates its own keys in a temporary
directory. Keys are EC P-256 (fast to generate) and the certificates carry the extensions a
strict verifier asks for (basic constraints, key usage, key identifiers, SANs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

__all__ = ["Certificates", "make_certificates"]

_DAYS = "2"
_NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

_SERVER_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_CLIENT_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True, slots=True)
class Certificates:
    """Paths of the generated PEM files."""

    ca_cert: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _openssl(*args: str, cwd: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("the openssl command line tool is needed to make test certificates")
    done = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{done.stderr.strip()}")


def _leaf(directory: str, name: str, subject: str, extensions: str) -> tuple[str, str]:
    """A key and a certificate signed by the CA in ``directory``; returns their paths."""
    with open(os.path.join(directory, f"{name}.ext"), "w") as f:
        f.write(extensions)
    _openssl(
        "req", *_NEW_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject,
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", _DAYS, "-out", f"{name}.crt", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip
    return os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key")


def make_certificates(directory: str) -> Certificates:
    """Generate a CA and, signed by it, a server certificate for ``127.0.0.1``/``localhost``
    and a client certificate, all in ``directory`` (which must exist)."""
    _openssl(
        "req", "-x509", *_NEW_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", _DAYS,
        "-subj", "/CN=gcache test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    server_cert, server_key = _leaf(directory, "server", "/CN=127.0.0.1", _SERVER_EXTENSIONS)
    client_cert, client_key = _leaf(directory, "client", "/CN=gcache client", _CLIENT_EXTENSIONS)
    return Certificates(
        ca_cert=os.path.join(directory, "ca.crt"),
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
    )
