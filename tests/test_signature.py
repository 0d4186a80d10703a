"""Signatures with formatting ("Use a line with formatting features"): simple HTML or
Markdown-like text becomes the HTML part, cut down to a safe subset, and a faithful plain
rendering; a signature without formatting is sent exactly as written."""

from __future__ import annotations

import json

import pytest
from conftest import drop, message

from mailbridge.domain.compose import Draft, compose
from mailbridge.domain.parse import parse
from mailbridge.domain.signature import render_signature


@pytest.mark.parametrize("plain", ["-- \nAcme Support", "Tel <b2b line> & co",
                                   "john_doe_x@example.com", "O'Brien [desk]", ""])
def test_plain_signatures_are_sent_as_written(plain):
    found = render_signature(plain)
    assert (found.text, found.html) == (plain, None)


def test_html_keeps_its_formatting_and_its_typed_lines():
    found = render_signature("-- \n<b>Alice</b> Smith\nAcme <a href='https://acme.example'>"
                             "site</a> &amp; <a href='mailto:help@acme.example'>"
                             "help@acme.example</a>")
    assert found.html == ('-- <br>\n<b>Alice</b> Smith<br>\nAcme <a href="https://acme.example">'
                          'site</a> &amp; <a href="mailto:help@acme.example">help@acme.example'
                          '</a>')
    assert found.text == "-- \nAlice Smith\nAcme site <https://acme.example> & help@acme.example\n"


def test_html_with_its_own_breaks_is_not_given_more():
    assert render_signature("<div>a</div>\n  <div>b</div>x<br><br>y").text == "a\nb\nx\n\ny\n"
    found = render_signature("<p><b>Alice</b></p>\n<p>Acme</p>\n<ul><li>one</li><li>two</li>"
                             "</ul><hr><img src='https://acme.example/logo.png' alt='Acme'>")
    assert "<br>" not in found.html
    assert found.text == "Alice\n\nAcme\n\n- one\n- two\n----\nAcme\n"


@pytest.mark.parametrize(("source", "gone"), [
    ("<b>A</b><script>alert(1)</script>", "<script"),
    ('<b onclick="steal()">A</b>', "onclick"),
    ('<a href="javascript:alert(1)">A</a>', "javascript"),
    ('<span style="color:red;position:fixed;top:0">A</span>', "position"),
    ('<b>A</b><iframe src="https://evil.example"></iframe>', "iframe"),
    ('<b>A</b><form action="https://evil.example"><input name=x></form>', "form"),
    ('<img src="x" onerror="steal()"><b>A</b>', "onerror"),
    ("<b>A</b><style>body{display:none}</style>", "display"),
])
def test_html_is_cut_down_to_a_safe_subset(source, gone):
    found = render_signature(source)
    assert "<b>A</b>" in found.html or ">A<" in found.html
    assert gone not in found.html.lower()
    assert gone not in found.text.lower()


def test_markdown_like_text():
    found = render_signature("-- \n**Alice** Smith\n*2nd line* support\n"
                             "[Acme](https://acme.example) · \\*24/7\\*")
    assert found.html == ("--<br>\n<strong>Alice</strong> Smith<br>\n<em>2nd line</em> "
                          'support<br>\n<a href="https://acme.example">Acme</a> · *24/7*')
    assert found.text == ("-- \nAlice Smith\n2nd line support\nAcme <https://acme.example> · "
                          "*24/7*\n")
    assert "href" not in render_signature("[x](javascript:alert(1)) **y**").html
    assert render_signature("<script>x</script> **y**").html == (
        "&lt;script&gt;x&lt;/script&gt; <strong>y</strong>")  # Markdown-like: "<" is text


def test_composed_mail_is_multipart_alternative_with_both_renderings():
    made = compose(Draft(ticket=7, subject="Printer", body="Fixed.", from_name="Acme",
                         from_email="help@acme.test", recipients=("ann@x.test",),
                         signature="-- \n<b>Alice</b>, <i>support</i>"), "u1", "acme.test")
    parsed = parse(made.copies[0][1])
    assert parsed.text == "Fixed.\n\n-- \nAlice, support\n"
    assert '<div class="signature">-- <br>\r\n<b>Alice</b>, <i>support</i></div>' in parsed.html
    assert made.unquoted == "Fixed.\n\n-- \nAlice, support\n"


def test_a_reply_carries_the_formatted_signature(mb, smtp):
    spool = mb.drop_channel(
        signature="-- \n**Acme Support**\n[acme.example](https://acme.example)",
        use_common_signature=True,
        outgoing={"type": "smtp", "host": "127.0.0.1", "port": smtp.port, "security": "none"})
    drop(spool, message("Printer broken"))
    assert mb("sync").exit_code == 0
    assert mb("agents", "add", "alice", "--email", "alice@example.com", "--signature",
              "<b>Alice</b> <script>x()</script>\n2nd line").exit_code == 0
    assert mb("tickets", "reply", "1", "-m", "On it.").exit_code == 0
    assert mb("tickets", "reply", "1", "-m", "Fixed.", "--as", "alice").exit_code == 0
    acting = mb("tickets", "reply", "1", "-m", "Closing.", env={"MAILBRIDGE_AGENT": "alice"})
    assert acting.exit_code == 0  # the acting agent, as every command that acts takes it
    assert mb("sync").exit_code == 0
    common, personal, by_env = (r.message for r in smtp.received)
    assert by_env.get_body(("plain",)).get_content().startswith("Closing.\n\nAlice\n")
    assert common.get_content_type() == "multipart/alternative"
    assert common.get_body(("plain",)).get_content().startswith(
        "On it.\n\n-- \nAcme Support\nacme.example <https://acme.example>\n")
    html = common.get_body(("html",)).get_content()
    assert '<strong>Acme Support</strong><br>\n<a href="https://acme.example">' in html
    assert personal.get_body(("plain",)).get_content().startswith("Fixed.\n\nAlice\n2nd line\n")
    html = personal.get_body(("html",)).get_content()
    assert "<b>Alice</b>" in html and "script" not in html
    stored = json.loads(mb("tickets", "show", "1", "--format", "json").stdout)["messages"]
    assert stored[1]["text"].startswith("On it.\n\n-- \nAcme Support\n")
