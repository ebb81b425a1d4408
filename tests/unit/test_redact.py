"""redact: every registered secret (and its encodings) is masked; masks go to GitHub Actions."""

from __future__ import annotations

import base64

import pytest

from pipeline.ui import redact


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    redact.clear()
    yield
    redact.clear()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_registered_secret_is_masked_everywhere_in_the_text():
    redact.register("hunter2-token")
    assert redact.redact("pw=hunter2-token, again hunter2-token.") == "pw=***, again ***."
    assert redact.MASK == "***"


def test_text_without_secrets_is_unchanged():
    redact.register("s3cr3t")
    assert redact.redact("nothing to hide here") == "nothing to hide here"


def test_the_base64_form_of_a_secret_is_masked_too():
    redact.register("hunter2-token")
    encoded = b64("hunter2-token")
    assert redact.redact(f"Authorization: Basic {encoded}") == "Authorization: Basic ***"


def test_basic_auth_pair_is_masked_as_sent():
    redact.register_basic("octo", "pw-0000-secret")
    pair = b64("octo:pw-0000-secret")
    assert redact.redact(f"basic {pair} / pw-0000-secret") == "basic *** / ***"


def test_basic_without_a_username_registers_only_the_password():
    redact.register_basic(None, "pw-0000-secret")
    assert redact.redact("pw-0000-secret") == "***"
    assert redact.redact(b64(":pw-0000-secret")) == b64(":pw-0000-secret")
    assert redact.redact(b64("None:pw-0000-secret")) == b64("None:pw-0000-secret")
    redact.register_basic("octo", None)
    assert redact.redact("octo") == "octo"
    assert redact.redact(b64("octo:None")) == b64("octo:None")


@pytest.mark.parametrize("secret, masked", [
    ("abcd", True),            # 4 characters: the shortest that is masked
    ("abc", False),            # 3: too short, masking it would mangle ordinary words
    ("", False),
    (None, False),
])
def test_the_four_character_threshold(secret, masked):
    redact.register(secret)
    text = f"x {secret} y" if secret else "x abc y"
    assert (redact.redact(text) == "x *** y") is masked
    if not masked:
        assert redact.redact(text) == text


def test_a_multi_line_secret_is_masked_line_by_line():
    key = "-----BEGIN KEY-----\nAAAAbbbbCCCC\nwxyz\nabc\n-----END KEY-----"
    redact.register(key)
    assert redact.redact(key) == "***"
    # one line of it leaks alone (a wrapped log line): still masked
    assert redact.redact("line: AAAAbbbbCCCC") == "line: ***"
    assert redact.redact("line: wxyz") == "line: ***"           # 4 characters: masked
    assert redact.redact("line:   -----END KEY-----  ") == "line:   ***  "
    # a line shorter than 4 characters is not a secret of its own
    assert redact.redact("abc") == "abc"


def test_the_longest_secret_is_masked_first():
    redact.register("token")
    redact.register("token-with-suffix")
    assert redact.redact("token-with-suffix token") == "*** ***"


def test_clear_forgets_every_secret():
    redact.register("s3cr3t")
    redact.clear()
    assert redact.redact("s3cr3t") == "s3cr3t"


# -- GitHub Actions masks ---------------------------------------------------------------------

def test_no_mask_command_outside_github_actions(capsys, monkeypatch):
    redact.register("s3cr3t-value")
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    redact.register("other-s3cr3t")
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert redact.redact("s3cr3t-value other-s3cr3t") == "*** ***"


def test_github_actions_gets_one_mask_per_value_on_stderr(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    redact.register("s3cr3t-value")
    out = capsys.readouterr()
    assert out.out == ""                          # stdout stays clean for --json
    assert out.err.splitlines() == sorted(["::add-mask::s3cr3t-value",
                                           "::add-mask::" + b64("s3cr3t-value")])
    # registering it again says nothing new
    redact.register("s3cr3t-value")
    assert capsys.readouterr().err == ""


def test_github_actions_masks_are_escaped_and_per_line(capsys, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    secret = "50%off\n  wxyz  \nabc"
    redact.register(secret)
    lines = capsys.readouterr().err.splitlines()
    # `%` escaped as the runner expects; one command per line, stripped; "abc" is too short
    assert sorted(set(lines)) == sorted({"::add-mask::50%25off", "::add-mask::wxyz",
                                         "::add-mask::" + b64(secret)})


def test_mask_command_escaping():
    assert redact._mask_command("a%b\rc\nd") == "::add-mask::a%25b%0Dc%0Ad"


def test_masks_are_flushed_at_once(monkeypatch):
    """The runner must see the mask before anything else can print the secret."""
    import io
    import sys

    class Stream(io.StringIO):
        flushed = ""

        def flush(self):
            self.flushed = self.getvalue()

    stream = Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    redact.register("s3cr3t-value")
    assert "::add-mask::s3cr3t-value\n" in stream.flushed
