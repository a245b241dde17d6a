"""Keys and certificates minted at run time: porch identity keys and a
throwaway CA with its leaves."""

import os
import subprocess

from .paths import PORCHCTL


def keygen(path):
    out = subprocess.run([PORCHCTL, "keygen", path], check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out.startswith("ed25519:"), out
    return out


class CA:
    """A throwaway CA and leaf certificates minted at test time."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self.crt = os.path.join(d, "ca.crt")
        self.key = os.path.join(d, "ca.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", self.key, "-out", self.crt, "-days", "2",
                        "-subj", "/CN=porch test CA"],
                       check=True, capture_output=True)

    def leaf(self, name, *alt):
        """Returns (cert, key) for name (and alt names)."""
        crt = os.path.join(self.dir, f"{name}.crt")
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        ext = os.path.join(self.dir, f"{name}.ext")
        sans = ",".join(f"DNS:{n}" for n in (name,) + alt)
        with open(ext, "w") as f:
            f.write(f"subjectAltName={sans}\n")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", csr, "-subj", f"/CN={name}"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA",
                        self.crt, "-CAkey", self.key, "-CAcreateserial",
                        "-out", crt, "-days", "2", "-extfile", ext],
                       check=True, capture_output=True)
        return crt, key
