"""Independent checks of X.509-SVIDs: Python `cryptography` and the openssl(1) CLI.

Each check raises AssertionError with a message that says which SVID and which rule
(SPIFFE X509-SVID spec / wimsed contract) failed.
"""

import datetime
import os
import subprocess
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

# DER of: INTEGER 0, then AlgorithmIdentifier OIDs id-ecPublicKey and prime256v1.
_OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
_OID_PRIME256V1 = bytes.fromhex("06082a8648ce3d030107")


def _der_tlv(buf, pos):
    """Parse one DER TLV at pos; returns (tag, value_start, value_end)."""
    if pos + 2 > len(buf):
        raise AssertionError(f"truncated DER at offset {pos}")
    tag = buf[pos]
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise AssertionError(f"bad DER length at offset {pos - 1}")
        length = int.from_bytes(buf[pos:pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise AssertionError(f"DER element at offset {pos} overruns the buffer")
    return tag, pos, pos + length


def split_der(blob, what="DER blob"):
    """Split concatenated DER SEQUENCEs (certificate chains, bundles)."""
    out, pos = [], 0
    if not blob:
        raise AssertionError(f"{what} is empty")
    while pos < len(blob):
        tag, _, end = _der_tlv(blob, pos)
        if tag != 0x30:
            raise AssertionError(f"{what}: element at offset {pos} is not a SEQUENCE "
                                 f"(tag 0x{tag:02x}); PEM instead of DER?")
        out.append(blob[pos:end])
        pos = end
    return out


def load_der_certs(blob, what):
    return [x509.load_der_x509_certificate(d) for d in split_der(blob, what)]


def assert_pkcs8_ec_p256(key_der, what):
    """PrivateKeyInfo ::= SEQUENCE { INTEGER 0, AlgorithmIdentifier{ecPublicKey, prime256v1}, OCTET STRING }
    (a SEC1 ECPrivateKey would start with INTEGER 1 and has no AlgorithmIdentifier)."""
    tag, start, end = _der_tlv(key_der, 0)
    assert tag == 0x30 and end == len(key_der), f"{what}: key is not a single DER SEQUENCE"
    tag, vs, ve = _der_tlv(key_der, start)
    assert tag == 0x02 and key_der[vs:ve] == b"\x00", \
        f"{what}: key is not PKCS#8 (first element is not INTEGER 0; SEC1 or PEM?)"
    tag, alg_s, alg_e = _der_tlv(key_der, ve)
    alg = key_der[alg_s:alg_e]
    assert tag == 0x30 and alg.startswith(_OID_EC_PUBLIC_KEY), \
        f"{what}: PKCS#8 algorithm is not id-ecPublicKey ({alg.hex()})"
    assert _OID_PRIME256V1 in alg, f"{what}: PKCS#8 curve is not prime256v1 ({alg.hex()})"


def ext(cert, cls, what, required=True):
    """The extension of type cls, or None; a parse error becomes a clear AssertionError
    (cryptography parses extensions as strict DER, like Go's crypto/x509 does)."""
    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        if required:
            raise AssertionError(f"{what}: no {cls.__name__} extension") from None
        return None
    except ValueError as e:
        raise AssertionError(f"{what}: extensions are not valid DER ({e}); "
                             "strict parsers (Go crypto/x509, Rust) reject this certificate. "
                             "Note: DER BOOLEAN TRUE is 0xFF (OpenSSL: BASIC_CONSTRAINTS.ca = 0xFF)") from None


def _utc(dt):
    return dt if dt.tzinfo else dt.replace(tzinfo=datetime.timezone.utc)


def not_before(cert):
    return _utc(getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before)


def not_after(cert):
    return _utc(getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after)


def check_ca_cert(ca, what):
    bc = ext(ca, x509.BasicConstraints, what).value
    assert bc.ca, f"{what}: bundle certificate is not a CA (basicConstraints CA:FALSE)"
    ku = ext(ca, x509.KeyUsage, what)
    assert ku.critical and ku.value.key_cert_sign, \
        f"{what}: bundle CA keyUsage must be critical with keyCertSign"
    san = ext(ca, x509.SubjectAlternativeName, what, required=False)
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier) if san else []
    for u in uris:
        assert u.rstrip("/") == u and u.count("/") == 2, \
            f"{what}: signing certificate SPIFFE ID must have no path, got {u}"


def check_svid(svid, ttl=None, fetched_at=None, trust_domain="example.org"):
    """Validate one X509SVID message with `cryptography`; returns (chain, key, bundle)."""
    what = f"SVID {svid.spiffe_id!r}"
    assert svid.spiffe_id.startswith(f"spiffe://{trust_domain}/"), \
        f"{what}: spiffe_id not in trust domain {trust_domain} or has no path"
    chain = load_der_certs(svid.x509_svid, f"{what} x509_svid")
    bundle = load_der_certs(svid.bundle, f"{what} bundle")
    leaf = chain[0]

    # exactly one URI SAN, equal to spiffe_id
    san_ext = ext(leaf, x509.SubjectAlternativeName, what)
    uris = san_ext.value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [svid.spiffe_id], \
        f"{what}: leaf URI SANs must be exactly [{svid.spiffe_id}], got {uris}"
    if len(leaf.subject) == 0:
        assert san_ext.critical, f"{what}: subject is empty, so the SAN extension must be critical"

    # basicConstraints present, CA:FALSE
    bc = ext(leaf, x509.BasicConstraints, what).value
    assert bc.ca is False, f"{what}: leaf basicConstraints must be CA:FALSE"

    # keyUsage critical, digitalSignature only
    ku_ext = ext(leaf, x509.KeyUsage, what)
    ku = ku_ext.value
    assert ku_ext.critical, f"{what}: leaf keyUsage must be critical"
    assert ku.digital_signature, f"{what}: leaf keyUsage lacks digitalSignature"
    others = {n: getattr(ku, n) for n in ("content_commitment", "key_encipherment",
                                          "data_encipherment", "key_agreement",
                                          "key_cert_sign", "crl_sign")}
    assert not any(others.values()), \
        f"{what}: leaf keyUsage must be digitalSignature only, also has " \
        f"{[n for n, v in others.items() if v]}"

    # EKU serverAuth + clientAuth
    eku = list(ext(leaf, x509.ExtendedKeyUsage, what).value)
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku, \
        f"{what}: leaf EKU must contain serverAuth and clientAuth, got {[o.dotted_string for o in eku]}"

    # EC P-256 key, PKCS#8 DER, matching the leaf
    pub = leaf.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1", \
        f"{what}: leaf key is not EC P-256 ({type(pub).__name__})"
    assert_pkcs8_ec_p256(svid.x509_svid_key, what)
    key = serialization.load_der_private_key(svid.x509_svid_key, password=None)
    assert key.public_key().public_numbers() == pub.public_numbers(), \
        f"{what}: x509_svid_key does not match the leaf certificate's public key"

    # intermediates (if any) are CAs; bundle certs are CAs
    for i, c in enumerate(chain[1:], 1):
        check_ca_cert(c, f"{what} chain[{i}]")
    for i, c in enumerate(bundle):
        check_ca_cert(c, f"{what} bundle[{i}]")

    # validity ~ TTL
    if ttl is not None:
        now = fetched_at or datetime.datetime.now(datetime.timezone.utc)
        nb, na = not_before(leaf), not_after(leaf)
        assert nb <= now + datetime.timedelta(seconds=5), \
            f"{what}: notBefore {nb} is in the future (now {now})"
        remaining = na - now
        slack = datetime.timedelta(seconds=120)
        assert ttl - slack <= remaining <= ttl + slack, \
            f"{what}: notAfter {na} is {remaining} from now, want ~{ttl}"
        lifetime = na - nb
        assert lifetime <= ttl + slack, f"{what}: lifetime {lifetime} exceeds TTL {ttl}"
    return chain, key, bundle


def pem(certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


DEFAULT_VERIFY_MODES = ((), ("-x509_strict",), ("-purpose", "sslserver"), ("-purpose", "sslclient"))


def openssl_verify(chain, bundle, modes=DEFAULT_VERIFY_MODES):
    """`openssl verify -CAfile bundle.pem [-untrusted inter.pem] <mode> leaf.pem` for each mode:
    plain, RFC 5280 strict, and as a TLS server and a TLS client certificate (EKU)."""
    with tempfile.TemporaryDirectory(prefix="wimsed-ossl-") as d:
        leaf_p, ca_p, inter_p = (os.path.join(d, n) for n in ("leaf.pem", "bundle.pem", "inter.pem"))
        with open(leaf_p, "wb") as f:
            f.write(pem(chain[:1]))
        with open(ca_p, "wb") as f:
            f.write(pem(bundle))
        extra = []
        if len(chain) > 1:
            with open(inter_p, "wb") as f:
                f.write(pem(chain[1:]))
            extra = ["-untrusted", inter_p]
        for mode in modes:
            openssl_verify_files(ca_p, leaf_p, extra + list(mode))


def openssl_verify_files(ca_pem_path, leaf_pem_path, extra=()):
    cmd = ["openssl", "verify", "-CAfile", ca_pem_path, *extra, leaf_pem_path]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip().endswith(": OK"), \
        f"{' '.join(cmd)} failed (rc {r.returncode}):\n{r.stdout}{r.stderr}"
