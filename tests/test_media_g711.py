"""G.711 tables against the reference algorithm, for every code and every 16-bit input."""
import numpy as np

from media import g711


def test_decode_matches_reference_all_codes():
    for c in range(256):
        assert g711.DECODE[g711.ULAW][c] == g711.ref_ulaw2linear(c)
        assert g711.DECODE[g711.ALAW][c] == g711.ref_alaw2linear(c)


def test_encode_matches_reference_every_input():
    lin = np.arange(65536, dtype=np.uint16).view(np.int16)
    for law, fn in ((g711.ULAW, g711.ref_linear2ulaw), (g711.ALAW, g711.ref_linear2alaw)):
        ref = np.fromiter((fn(int(v)) for v in lin), dtype=np.uint8, count=65536)
        assert np.array_equal(g711.encode(lin, law), ref)


def test_round_trip_all_codes():
    codes = np.arange(256, dtype=np.uint8)
    back = g711.encode(g711.decode(codes, g711.ALAW), g711.ALAW)
    assert np.array_equal(back, codes)
    back = g711.encode(g711.decode(codes, g711.ULAW), g711.ULAW)
    # µ-law has two zeros (0x7F = -0 and 0xFF = +0): -0 comes back as +0
    assert np.array_equal(back[codes != 0x7F], codes[codes != 0x7F]) and back[0x7F] == 0xFF


def test_known_values_and_silence():
    assert g711.ref_linear2ulaw(0) == 0xFF and g711.ref_linear2alaw(0) == 0xD5
    assert g711.ref_ulaw2linear(0x00) == -32124 and g711.ref_ulaw2linear(0x80) == 32124
    assert g711.ref_alaw2linear(0xAA) == 32256 and g711.ref_alaw2linear(0x2A) == -32256
    for law, code in g711.SILENCE_BYTE.items():
        assert abs(int(g711.DECODE[law][code])) <= 8


def test_mixed_law_rows_and_float_encode():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, size=(6, 160), dtype=np.uint8)
    laws = np.array([0, 1, 0, 1, 1, 0], dtype=np.int8)
    dec = g711.decode_rows(codes, laws)
    for i in range(6):
        assert np.array_equal(dec[i], g711.DECODE[laws[i]][codes[i]].astype(np.float32))
    enc = g711.encode_float(dec, laws)
    fixed = codes.copy()
    fixed[(laws == 0)[:, None] & (codes == 0x7F)] = 0xFF
    assert np.array_equal(enc, fixed)
    # clipping instead of wrapping
    assert g711.encode_float(np.array([[1e6, -1e6]]), np.array([0]))[0].tolist() == [0x80, 0x00]


def test_transcode_table():
    for c in range(256):
        assert g711.TRANSCODE[0][c] == g711.ref_linear2alaw(g711.ref_ulaw2linear(c))
