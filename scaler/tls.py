"""TLS and mutual TLS for the gRPC server, with certificates reloaded from disk on change.

KEDA dials an external scaler over TLS when its TriggerAuthentication gives ``caCert`` (or the
trigger says ``enableTLS: "true"``), and presents ``tlsClientCert``/``tlsClientKey`` as its client
certificate (kedacore/keda ``pkg/scalers/external_scaler.go``, ``pkg/util/tls_config.go``).

``--tls-cert``/``--tls-key`` give the server's certificate chain and key (PEM files);
``--tls-client-ca`` (PEM) makes the server require a client certificate issued by that CA.

Reload: gRPC calls the fetcher of ``grpc.dynamic_ssl_server_credentials`` before every new TLS
handshake. ``CertificateReloader`` stats the files there (a few µs; ``stat`` follows the kubelet's
``..data`` symlink, so the atomic swap of a renewed Secret changes what it sees) and loads them
again only when one changed. A pair that does not load (a half-written file, a key that does not
match the certificate, a CA file holding no certificate) is logged once as a warning and ignored:
the server keeps the certificate it has. Connections already open keep theirs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger("depthscale.tls")

Stamp = tuple[tuple[int, int, int, int] | None, ...]


class TlsError(OSError):
    """A TLS file that cannot be used; the message names the flag (``--tls-key ...``).

    An ``OSError``, as the other start-up failures ``depthscale serve`` reports in one line."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the server's TLS material lives (PEM files).

    cert:      certificate chain, leaf first (``--tls-cert``; cert-manager's ``tls.crt``).
    key:       the leaf's private key, unencrypted (``--tls-key``; ``tls.key``).
    client_ca: CA certificates a client certificate must chain to (``--tls-client-ca``); None:
               no client certificate is asked for.
    """

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_flags(
        cls, cert: Path | None, key: Path | None, client_ca: Path | None
    ) -> TlsFiles | None:
        """None when no flag is given (plaintext); TlsError when the combination is incomplete."""
        if cert is None and key is None:
            if client_ca is not None:
                raise TlsError("--tls-client-ca needs --tls-cert and --tls-key")
            return None
        if cert is None:
            raise TlsError("--tls-key needs --tls-cert")
        if key is None:
            raise TlsError("--tls-cert needs --tls-key")
        return cls(cert, key, client_ca)

    def paths(self) -> tuple[Path, ...]:
        return (
            (self.cert, self.key)
            if self.client_ca is None
            else (self.cert, self.key, self.client_ca)
        )


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The bytes of one consistent load: the key matches the leaf, the CA holds certificates."""

    cert: bytes
    key: bytes
    client_ca: bytes | None
    fingerprint: str
    """SHA-256 of the leaf certificate (DER), hex: what logs name a certificate by."""


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{flag} {path}: {exc.strerror or exc}") from None


def load(files: TlsFiles) -> TlsMaterial:
    """Read and check the files; TlsError naming the flag and file at fault.

    The key is checked against the certificate by OpenSSL (``SSLContext.load_cert_chain``, which
    reads the paths); the bytes returned are those of a read before and an identical read after
    that check, so a pair swapped in meanwhile is never taken half old, half new."""
    cert = _read(files.cert, "--tls-cert")
    key = _read(files.key, "--tls-key")
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise TlsError(f"--tls-cert {files.cert}: no PEM certificate in the file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # password "": an encrypted key fails here instead of OpenSSL prompting on a terminal.
        context.load_cert_chain(files.cert, files.key, password="")
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
            raise TlsError(
                f"--tls-key {files.key} does not match --tls-cert {files.cert}"
            ) from None
        raise TlsError(
            f"--tls-cert {files.cert} / --tls-key {files.key}: cannot load ({reason}); an unencrypted PEM key is needed"
        ) from None
    except OSError as exc:
        raise TlsError(f"--tls-cert {files.cert} / --tls-key {files.key}: {exc.strerror}") from None
    if _read(files.cert, "--tls-cert") != cert or _read(files.key, "--tls-key") != key:
        raise TlsError(f"--tls-cert {files.cert} / --tls-key {files.key}: changed while read")
    client_ca = None
    if files.client_ca is not None:
        client_ca = _read(files.client_ca, "--tls-client-ca")
        try:
            ssl.create_default_context(cadata=client_ca.decode("ascii", errors="replace"))
        except (ssl.SSLError, ValueError) as exc:
            raise TlsError(
                f"--tls-client-ca {files.client_ca}: no usable CA certificate ({exc})"
            ) from None
    return TlsMaterial(cert, key, client_ca, _fingerprint(cert))


def _fingerprint(cert_pem: bytes) -> str:
    text = cert_pem.decode("ascii", errors="replace")
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(text[:end])).hexdigest()


def _configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.client_ca
    )


def _stamp(paths: tuple[Path, ...]) -> Stamp:
    """What changes when a file is rewritten or swapped: device, inode, size, mtime (ns)."""
    stamps: list[tuple[int, int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append(None)
        else:
            stamps.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(stamps)


class CertificateReloader:
    """The certificate fetcher ``grpc.dynamic_ssl_server_credentials`` calls before every new
    handshake (from gRPC's own threads): None keeps the current certificate, a configuration
    replaces it for this and later handshakes.

    ``current`` is the material in use. ``reloads`` and ``rejected`` count the loads that were
    taken and refused since start."""

    def __init__(self, files: TlsFiles, initial: TlsMaterial, stamp: Stamp) -> None:
        self.files = files
        self.current = initial
        self.reloads = 0
        self.rejected = 0
        self._seen = stamp
        self._lock = threading.Lock()

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            with self._lock:
                return self._check()
        except Exception:  # never let a bug here break the handshake; gRPC would log it badly
            log.exception("certificate reload failed; keeping the current certificate")
            return None

    def _check(self) -> grpc.ServerCertificateConfiguration | None:
        stamp = _stamp(self.files.paths())
        if stamp == self._seen:
            return None
        self._seen = stamp  # a refused state is reported once, not at every handshake
        try:
            material = load(self.files)
        except TlsError as exc:
            self.rejected += 1
            log.warning(
                "new TLS files not used, keeping certificate %s: %s",
                self.current.fingerprint[:16],
                exc,
                extra={"fields": {"event": "tls-reload-refused", "reason": str(exc)}},
            )
            return None
        if material == self.current:
            return None
        self.current = material
        self.reloads += 1
        log.info(
            "TLS certificate reloaded: %s",
            material.fingerprint[:16],
            extra={"fields": {"event": "tls-reloaded", "sha256": material.fingerprint}},
        )
        return _configuration(material)


def server_credentials(files: TlsFiles) -> tuple[grpc.ServerCredentials, CertificateReloader]:
    """Credentials for ``add_secure_port``, reloading on change; TlsError when the files cannot
    be used now (checked at start-up, so a bad flag fails before the port is bound)."""
    stamp = _stamp(files.paths())
    material = load(files)
    reloader = CertificateReloader(files, material, stamp)
    credentials = grpc.dynamic_ssl_server_credentials(
        _configuration(material),
        reloader,
        require_client_authentication=files.client_ca is not None,
    )
    return credentials, reloader
