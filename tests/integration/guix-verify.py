#!/usr/bin/env python3
"""Verify a Guix narinfo's signature with libgcrypt directly, as Guix does
(guix/narinfo.scm, guix/pki.scm), independently of cairn's own code.

usage: guix-verify.py NARINFO PUBLIC-KEY-FILE

The signed text is everything before the "Signature:" line; the line is
"Signature: 1;<host>;<base64 of a signature s-expression>" holding
(signature (data (flags rfc6979) (hash sha256 #<hex>#)) (sig-val ...)
(public-key ...)).  Checks that the hash is the SHA-256 of the signed text,
that the embedded public key is PUBLIC-KEY-FILE's, and gcry_pk_verify.
Exit 0 when all hold; 1 with the reason otherwise.
"""
import base64
import ctypes
import ctypes.util
import hashlib
import re
import sys

lib = ctypes.util.find_library("gcrypt")
if not lib:
    sys.exit("guix-verify: libgcrypt not found")
g = ctypes.CDLL(lib)
g.gcry_check_version.restype = ctypes.c_char_p
g.gcry_check_version.argtypes = [ctypes.c_char_p]
g.gcry_sexp_sscan.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p,
                              ctypes.c_char_p, ctypes.c_size_t]
g.gcry_sexp_find_token.restype = ctypes.c_void_p
g.gcry_sexp_find_token.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
g.gcry_sexp_nth_data.restype = ctypes.c_void_p
g.gcry_sexp_nth_data.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]
g.gcry_pk_verify.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
g.gcry_pk_verify.restype = ctypes.c_uint
g.gcry_strerror.restype = ctypes.c_char_p
g.gcry_strerror.argtypes = [ctypes.c_uint]
g.gcry_check_version(None)


def sexp(text):
    s = ctypes.c_void_p()
    err = g.gcry_sexp_sscan(ctypes.byref(s), None, text, len(text))
    if err:
        sys.exit("guix-verify: bad s-expression: %s" % g.gcry_strerror(err).decode())
    return s


def token(s, name):
    t = g.gcry_sexp_find_token(s, name, 0)
    if not t:
        sys.exit("guix-verify: no (%s ...) in the signature" % name.decode())
    return t


def data(s, n):
    size = ctypes.c_size_t()
    p = g.gcry_sexp_nth_data(s, n, ctypes.byref(size))
    return ctypes.string_at(p, size.value) if p else None


text = open(sys.argv[1], "rb").read()
key = sexp(open(sys.argv[2], "rb").read())
i = text.find(b"Signature:")
if i < 0 or (i > 0 and text[i - 1:i] != b"\n"):
    sys.exit("guix-verify: no Signature line")
signed = text[:i]
line = text[i:].split(b"\n", 1)[0]
m = re.fullmatch(rb"Signature: 1;[^;]+;([A-Za-z0-9+/=]+)", line)
if not m:
    sys.exit("guix-verify: malformed Signature line")
sig = sexp(base64.b64decode(m.group(1)))
d = token(sig, b"data")
h = token(d, b"hash")
if data(h, 1) != b"sha256" or data(h, 2) != hashlib.sha256(signed).digest():
    sys.exit("guix-verify: the signed hash is not the SHA-256 of the text before Signature")
q_key = data(token(key, b"q"), 1)
q_sig = data(token(token(sig, b"public-key"), b"q"), 1)
if q_key is None or q_key != q_sig:
    sys.exit("guix-verify: signed by another key")
err = g.gcry_pk_verify(token(sig, b"sig-val"), d, key)
if err:
    sys.exit("guix-verify: gcry_pk_verify: %s" % g.gcry_strerror(err).decode())
print("guix-verify: valid signature")
