"""A textbook SM2 signer/verifier in plain Python, for the tests only.

It exists to run the standard's worked examples, which use a chosen nonce k (and, in
GB/T 32918.2, a 256-bit example curve that OpenSSL does not know), and to check OpenSSL's
signatures against the formulas of GB/T 32918.2 §6-7 written out independently. Affine
coordinates, no constant time: never on any path of the application (foundation.sm2 is).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


@dataclass(frozen=True)
class Curve:
    p: int
    a: int
    b: int
    n: int
    gx: int
    gy: int

    def add(self, P, Q):
        if P is None:
            return Q
        if Q is None:
            return P
        (x1, y1), (x2, y2) = P, Q
        if x1 == x2 and (y1 + y2) % self.p == 0:
            return None
        if P == Q:
            slope = (3 * x1 * x1 + self.a) * pow(2 * y1, -1, self.p)
        else:
            slope = (y2 - y1) * pow(x2 - x1, -1, self.p)
        x3 = (slope * slope - x1 - x2) % self.p
        return x3, (slope * (x1 - x3) - y1) % self.p

    def mul(self, k: int, P):
        result = None
        while k:
            if k & 1:
                result = self.add(result, P)
            P = self.add(P, P)
            k >>= 1
        return result

    @property
    def G(self):
        return self.gx, self.gy

    def z(self, distid: bytes, public) -> bytes:
        size = 32
        parts = [(len(distid) * 8).to_bytes(2, "big"), distid]  # ENTL: the ID length in bits
        for value in (self.a, self.b, self.gx, self.gy, public[0], public[1]):
            parts.append(value.to_bytes(size, "big"))
        return sm3(b"".join(parts))

    def e(self, distid: bytes, public, message: bytes) -> int:
        return int.from_bytes(sm3(self.z(distid, public) + message), "big")

    def sign(self, d: int, message: bytes, k: int, distid: bytes) -> tuple[int, int]:
        public = self.mul(d, self.G)
        e = self.e(distid, public, message)
        x1, _ = self.mul(k, self.G)
        r = (e + x1) % self.n
        s = (pow(1 + d, -1, self.n) * (k - r * d)) % self.n
        return r, s

    def verify(self, public, message: bytes, r: int, s: int, distid: bytes) -> bool:
        if not (0 < r < self.n and 0 < s < self.n):
            return False
        e = self.e(distid, public, message)
        t = (r + s) % self.n
        if t == 0:
            return False
        point = self.add(self.mul(s, self.G), self.mul(t, public))
        return point is not None and (e + point[0]) % self.n == r


RECOMMENDED = Curve(  # GB/T 32918.5-2017, sm2p256v1
    p=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF,
    a=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC,
    b=0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93,
    n=0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123,
    gx=0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    gy=0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)

EXAMPLE = Curve(  # the 256-bit example curve of the GB/T 32918.2 (GM/T 0003.2) worked example
    p=0x8542D69E4C044F18E8B92435BF6FF7DE457283915C45517D722EDB8B08F1DFC3,
    a=0x787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498,
    b=0x63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A,
    n=0x8542D69E4C044F18E8B92435BF6FF7DD297720630485628D5AE74EE7C32E79B7,
    gx=0x421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D,
    gy=0x0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2,
)
