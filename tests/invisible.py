"""Look-alike usernames, one per character class that a new username may not contain.

Shared by the HTTP sign-up tests (``test_policy.py``) and the CLI tests (``test_cli.py``):
each would sit beside ``admin`` and look like it.
"""

from __future__ import annotations

import pytest

REFUSAL = "Failed! Username must not contain invisible or direction-changing characters."

INVISIBLE_NAMES = [
    pytest.param("ad\u200bmin", id="Cf-zero-width-space"),
    pytest.param("ad\u200dmin", id="Cf-zero-width-joiner"),
    pytest.param("ad\u00admin", id="Cf-soft-hyphen"),
    pytest.param("\u202enimda", id="Cf-right-to-left-override"),
    pytest.param("ad\u200fmin", id="Cf-right-to-left-mark"),
    pytest.param("\ufeffadmin", id="Cf-byte-order-mark"),
    pytest.param("ad\u2060min", id="Cf-word-joiner"),
    pytest.param("admin\U000e0061\U000e007f", id="Cf-tag-characters"),
    pytest.param("ad\ue000min", id="Co-private-use"),
    pytest.param("ad\u0378min", id="Cn-unassigned"),
    pytest.param("ad\u115fmin", id="blank-hangul-choseong-filler"),
    pytest.param("ad\u1160min", id="blank-hangul-jungseong-filler"),
    pytest.param("ad\u3164min", id="blank-hangul-filler"),
    pytest.param("ad\uffa0min", id="blank-halfwidth-hangul-filler"),
    pytest.param("ad\u2800min", id="blank-braille-pattern-blank"),
    pytest.param("ad\u034fmin", id="blank-combining-grapheme-joiner"),
    pytest.param("ad\u17b4min", id="blank-khmer-inherent-vowel"),
    pytest.param("ad\u180bmin", id="blank-mongolian-variation-selector"),
    pytest.param("adm\ufe0fin", id="blank-variation-selector-16"),
    pytest.param("adm\U000e0100in", id="blank-variation-selector-17"),
    pytest.param("ad\U00016fe4min", id="blank-khitan-filler"),
    pytest.param("ad\U0001d159min", id="blank-null-notehead"),
]

#: Category Cs: what Python makes of the byte 0x80 in a command-line argument that is not
#: UTF-8. JSON cannot carry it (msgspec refuses the body as invalid JSON).
LONE_SURROGATE = "ad\udc80min"

#: Refused before this rule too (as whitespace), and still: the old message.
SEPARATOR_NAMES = [
    pytest.param("ad\u2028min", id="Zl-line-separator"),
    pytest.param("ad\u2029min", id="Zp-paragraph-separator"),
]
