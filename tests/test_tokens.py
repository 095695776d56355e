"""Access-token verification: strict format, one algorithm, typed claims, injected time, cache."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from authgate.errors import InvalidTokenError, TokenError, TokenExpiredError
from authgate.keys import KeyRing, SigningKey, generate, hs256_key
from authgate.models import Role
from authgate.tokens import CLOCK_SKEW_SECONDS, TokenCodec, TokenVerifier, ring_lookup
from tests.conftest import TEST_KEY, FakeClock
from tests.forge import NOW, P256_ORDER, b64, claims, es256_s, flip_s, segment, sign, token


def codec(
    clock: FakeClock, *, leeway: int = 30, cache_size: int = 100, key: SigningKey | None = None
) -> TokenCodec:
    return TokenCodec(
        KeyRing([key or hs256_key(TEST_KEY.encode())], clock=clock),
        issuer="authgate",
        audience="authgate",
        ttl_seconds=900,
        leeway_seconds=leeway,
        max_token_bytes=4096,
        cache_size=cache_size,
        clock=clock,
    )


@pytest.fixture
def tokens(clock: FakeClock) -> TokenCodec:
    return codec(clock)


def test_an_issued_token_verifies_with_its_claims(tokens: TokenCodec) -> None:
    verified = tokens.verify(
        tokens.issue(7, frozenset({Role.USER, Role.ADMIN}), "s" * 32, auth_time=0)
    )
    assert verified.user_id == 7
    assert verified.roles == {Role.USER, Role.ADMIN}
    assert verified.session_id == "s" * 32
    assert verified.expires_at - verified.issued_at == 900


def test_an_issued_token_carries_the_registered_claims(tokens: TokenCodec) -> None:
    payload = tokens.issue(1, frozenset({Role.USER}), "s", auth_time=0).split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "roles", "sid"} <= set(decoded)
    assert "password" not in json.dumps(decoded)


def test_es256_tokens_are_signed_low_s_and_only_low_s_verifies(clock: FakeClock) -> None:
    key = SigningKey(kid="es", algorithm="ES256", key=generate("ES256"), activates_at=0)
    tokens = codec(clock, key=key, cache_size=0)
    issued = [tokens.issue(1, frozenset({Role.USER}), "s" * 32, auth_time=0) for _ in range(40)]
    # A signer that ignores S signs high-S half the time: 40 low ones by chance is 1 in 2**40.
    assert all(es256_s(genuine) <= P256_ORDER // 2 for genuine in issued)
    for genuine in issued[:5]:
        assert tokens.verify(genuine).user_id == 1
        with pytest.raises(InvalidTokenError):
            tokens.verify(flip_s(genuine))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="lifetime-exactly-the-ttl"),
        pytest.param({"exp": NOW + 60}, id="shorter-lifetime"),
        pytest.param({"auth_time": NOW - 3600}, id="auth-time"),
    ],
)
def test_tokens_within_the_lifetime_with_known_claims_verify(
    tokens: TokenCodec, overrides: dict[str, object]
) -> None:
    assert tokens.verify(token(**overrides)).user_id == 1


def test_a_hand_made_token_with_our_key_verifies(tokens: TokenCodec) -> None:
    """The forger in tests/forge.py is faithful, so the attacks below test what they claim."""
    assert tokens.verify(token()).user_id == 1


def test_expiry_is_reported_only_for_a_genuine_token(tokens: TokenCodec, clock: FakeClock) -> None:
    genuine = token()
    clock.advance(900 + 31)
    with pytest.raises(TokenExpiredError):
        tokens.verify(genuine)
    forged = sign(
        {"alg": "HS256", "typ": "at+jwt"}, claims(), key="another-key-0123456789abcdef-0123456789"
    )
    with pytest.raises(InvalidTokenError):
        tokens.verify(forged)


def test_the_cache_never_skips_the_time_checks(tokens: TokenCodec, clock: FakeClock) -> None:
    value = tokens.issue(1, frozenset({Role.USER}), "s", auth_time=0)
    tokens.verify(value)  # now cached
    clock.advance(900 + 31)
    with pytest.raises(TokenExpiredError):
        tokens.verify(value)


def test_the_cache_is_bounded(clock: FakeClock) -> None:
    """Only a token the cache does not hold has its key looked up: the newest three are
    held, the one before them was dropped."""
    ring = KeyRing([hs256_key(TEST_KEY.encode())], clock=clock)
    issue = codec(clock).issue
    lookups: list[str | None] = []

    def counted(kid: str | None) -> SigningKey | None:
        lookups.append(kid)
        return ring_lookup(ring)(kid)

    small = TokenVerifier(
        counted,
        algorithms=frozenset({"HS256"}),
        issuer="authgate",
        audience="authgate",
        leeway_seconds=30,
        max_lifetime_seconds=900,
        max_token_bytes=4096,
        cache_size=3,
        clock=clock,
    )
    issued = [issue(user_id, frozenset({Role.USER}), "s", auth_time=0) for user_id in range(10)]
    for value in issued:
        small.verify(value)
    assert len(lookups) == 10
    for value in issued[-3:]:
        assert small.verify(value).user_id == issued.index(value)
    assert len(lookups) == 10  # all three from the cache
    small.verify(issued[-4])
    assert len(lookups) == 11  # dropped: verified again


def test_leeway_is_honoured_and_no_more(clock: FakeClock) -> None:
    strict = codec(clock, leeway=30)
    assert strict.verify(token(exp=NOW + 10, iat=NOW - 100, nbf=NOW - 100)).user_id == 1
    clock.advance(10 + 30 - 1)
    strict.verify(token(exp=NOW + 10, iat=NOW - 100, nbf=NOW - 100, jti="b"))
    clock.advance(2)
    with pytest.raises(TokenExpiredError):
        strict.verify(token(exp=NOW + 10, iat=NOW - 100, nbf=NOW - 100, jti="c"))


@pytest.mark.parametrize("leeway", [0, 1])
def test_a_token_stamped_by_a_clock_a_few_seconds_ahead_is_accepted(
    clock: FakeClock, leeway: int
) -> None:
    """Another authgate server's clock may run ahead by up to CLOCK_SKEW_SECONDS; what it
    has just issued must work here at once, whatever the (expiry) leeway."""
    tokens = codec(clock, leeway=leeway)
    ahead = NOW + CLOCK_SKEW_SECONDS
    assert tokens.verify(token(iat=ahead, nbf=ahead, exp=ahead + 900)).user_id == 1
    beyond = ahead + 1
    with pytest.raises(InvalidTokenError):
        tokens.verify(token(iat=beyond, nbf=beyond, exp=beyond + 900, jti="b"))


def test_without_leeway_a_token_is_expired_at_its_exp(clock: FakeClock) -> None:
    tokens = codec(clock, leeway=0)
    clock.advance(-0.5)
    assert tokens.verify(token(exp=NOW)).user_id == 1
    clock.advance(0.5)
    with pytest.raises(TokenExpiredError):
        tokens.verify(token(exp=NOW))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(token() + "=", id="padding-appended"),
        pytest.param(token() + "\n", id="trailing-newline"),
        pytest.param(token().replace(".", "..", 1), id="empty-segment"),
        pytest.param(token() + ".e30", id="four-segments"),
        pytest.param(token() + ".e30.e30", id="five-segments-jwe-shape"),
        pytest.param(token()[: token().rindex(".") + 1], id="signature-stripped"),
        pytest.param(token()[: token().rindex(".")], id="two-segments"),
        pytest.param(token().replace("-", "+").replace("_", "/") + "+/", id="plain-base64"),
        pytest.param("é" + token(), id="non-ascii"),
        pytest.param(" " + token(), id="leading-space"),
        pytest.param("a" * 5000 + "." + "b" * 10 + "." + "c", id="oversized"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_tokens_are_refused_before_decoding(tokens: TokenCodec, value: str) -> None:
    with pytest.raises(InvalidTokenError):
        tokens.verify(value)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param({"alg": "none", "typ": "at+jwt"}, id="alg-none"),
        pytest.param({"alg": "None", "typ": "at+jwt"}, id="alg-None"),
        pytest.param({"alg": "nOnE", "typ": "at+jwt"}, id="alg-nOnE"),
        pytest.param({"alg": "HS512", "typ": "at+jwt"}, id="alg-HS512"),
        pytest.param({"alg": "hs256", "typ": "at+jwt"}, id="alg-lowercase"),
        pytest.param({"alg": "RS256", "typ": "at+jwt"}, id="alg-RS256"),
        pytest.param({"typ": "at+jwt"}, id="alg-missing"),
        pytest.param({"alg": "HS256", "typ": "JWT"}, id="typ-JWT"),
        pytest.param({"alg": "HS256"}, id="typ-missing"),
        pytest.param(
            {"alg": "HS256", "typ": "at+jwt", "crit": ["x-unknown"], "x-unknown": 1}, id="crit"
        ),
        pytest.param({"alg": "HS256", "typ": "at+jwt", "jku": "http://127.0.0.1:9/jwks"}, id="jku"),
        pytest.param({"alg": "HS256", "typ": "at+jwt", "x5u": "http://127.0.0.1:9/x5u"}, id="x5u"),
        pytest.param(
            {"alg": "HS256", "typ": "at+jwt", "jwk": {"kty": "oct", "k": b64(b"k" * 32)}}, id="jwk"
        ),
    ],
)
def test_headers_outside_the_allow_list_are_refused(
    tokens: TokenCodec, header: dict[str, object]
) -> None:
    with pytest.raises(InvalidTokenError):
        tokens.verify(sign(header, claims()))


def test_alg_none_with_an_empty_signature_is_refused(tokens: TokenCodec) -> None:
    unsigned = f"{segment({'alg': 'none', 'typ': 'at+jwt'})}.{segment(claims())}."
    with pytest.raises(InvalidTokenError):
        tokens.verify(unsigned)


def test_a_token_signed_with_hs512_and_our_key_is_refused(tokens: TokenCodec) -> None:
    with pytest.raises(InvalidTokenError):
        tokens.verify(sign({"alg": "HS512", "typ": "at+jwt"}, claims(), digest=hashlib.sha512))


@pytest.mark.parametrize(
    "kid", ["", "../../../../dev/null", "/dev/null", "|sleep 10", "x' UNION SELECT '1';--"]
)
@pytest.mark.parametrize("key", [b"", b"1"], ids=["empty-key", "key-1"])
def test_injected_kid_values_select_nothing(tokens: TokenCodec, kid: str, key: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        tokens.verify(sign({"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims(), key=key))


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"iss": "someone-else"}, id="wrong-iss"),
        pytest.param({"iss": None}, id="missing-iss"),
        pytest.param({"aud": "other-service"}, id="wrong-aud"),
        pytest.param({"aud": ["authgate", "other"]}, id="aud-list"),
        pytest.param({"aud": None}, id="missing-aud"),
        pytest.param({"exp": None}, id="missing-exp"),
        pytest.param({"iat": None}, id="missing-iat"),
        pytest.param({"nbf": None}, id="missing-nbf"),
        pytest.param({"sub": None}, id="missing-sub"),
        pytest.param({"jti": None}, id="missing-jti"),
        pytest.param({"sub": "admin"}, id="sub-not-an-id"),
        pytest.param({"sub": 1}, id="sub-not-a-string"),
        pytest.param({"exp": "never"}, id="exp-string"),
        pytest.param({"exp": True}, id="exp-bool"),
        pytest.param({"roles": ["root"]}, id="unknown-role"),
        pytest.param({"roles": "admin"}, id="roles-string"),
        pytest.param({"nbf": NOW + 120}, id="nbf-future"),
        pytest.param({"iat": NOW + 120}, id="iat-future"),
        pytest.param({"exp": NOW - 31}, id="exp-past-leeway"),
        pytest.param({"exp": NOW + 901}, id="lifetime-one-second-too-long"),
        pytest.param({"iat": NOW - 60, "exp": NOW + 860}, id="lifetime-from-an-earlier-iat"),
        pytest.param({"exp": NOW + 10 * 365 * 86400}, id="exp-ten-years-after-iat"),
        pytest.param({"admin": True}, id="unknown-claim"),
        pytest.param({"scope": "admin"}, id="unknown-claim-scope"),
        pytest.param({"auth_time": "yesterday"}, id="auth-time-string"),
    ],
)
def test_claims_are_checked_strictly(tokens: TokenCodec, overrides: dict[str, object]) -> None:
    with pytest.raises(TokenError):
        tokens.verify(token(**overrides))


@pytest.mark.parametrize("payload", [b"not json", b"[]", b"123", b"null", b'"text"'])
def test_payloads_that_are_not_json_objects_are_refused(tokens: TokenCodec, payload: bytes) -> None:
    with pytest.raises(InvalidTokenError):
        tokens.verify(sign({"alg": "HS256", "typ": "at+jwt"}, payload))


def test_a_header_that_is_not_json_is_refused(tokens: TokenCodec) -> None:
    with pytest.raises(InvalidTokenError):
        tokens.verify(sign(b"not json", claims()))


def test_a_changed_payload_with_the_original_signature_is_refused(tokens: TokenCodec) -> None:
    header, _, signature = token().split(".")
    elevated = segment(claims(roles=["user", "admin"], sub="2"))
    with pytest.raises(InvalidTokenError):
        tokens.verify(f"{header}.{elevated}.{signature}")


def test_duplicate_claims_are_read_from_the_verified_result_only(tokens: TokenCodec) -> None:
    """TF-24: a duplicated ``sub`` is resolved once, by the one parser, last value winning."""
    body = json.dumps(claims())[:-1] + ', "sub": "2"}'
    value = sign({"alg": "HS256", "typ": "at+jwt"}, body.encode())
    assert tokens.verify(value).subject == "2"


def test_a_signature_spelled_with_its_unused_bits_set_is_refused(tokens: TokenCodec) -> None:
    """A 32-byte HMAC is 43 base64url characters: the last one carries two unused bits.
    Setting them changes no byte of the signature, but would give the token a second
    spelling (and a second cache entry)."""
    genuine = token()
    assert tokens.verify(genuine)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(genuine[-1])
    respelled = genuine[:-1] + alphabet[last ^ 0b01]
    assert base64.urlsafe_b64decode(respelled.rpartition(".")[2] + "=") == base64.urlsafe_b64decode(
        genuine.rpartition(".")[2] + "="
    )  # the same signature bytes
    with pytest.raises(InvalidTokenError):
        tokens.verify(respelled)
