#!/usr/bin/python3
"""Integration: the dashboard's JS and CSS are embedded minified (issue 10's budget).

contrib/min-assets.awk strips indentation, blank lines and comments from the
embedded copies at build time (contrib/embed-assets.sh).  Checked here:
  - on crafted inputs, what it removes and what it must keep (comment-like text
    inside strings, URLs, regular expressions), and that it refuses (exit 3, the
    file then embedded as it is) what it cannot handle safely: a template
    literal, a line continued by a backslash, an unbalanced comment delimiter;
  - the real daemon serves /app.js and /app.css as exactly that transformation
    of src/dashboard/, smaller than the sources, the JS still valid (node
    --check), with an ETag of the bytes served; index.html is served as it is.
The dashboard's behaviour with the minified files is checked by
tests/browser/dashboard.test.js in Chromium.
"""

import os
import subprocess
import sys
import tempfile

TOP_SRCDIR = os.environ.get("TOP_SRCDIR", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP_SRCDIR, "tests", "integration"))
from harness import Daemon, run  # noqa: E402

AWK = os.path.join(TOP_SRCDIR, "contrib", "min-assets.awk")
DASH = os.path.join(TOP_SRCDIR, "src", "dashboard")


def minify(text, js=True):
    p = subprocess.run(["awk", "-v", "js=%d" % js, "-f", AWK], input=text.encode(),
                       capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode()


def test_removes_comments_and_indentation():
    src = ("/*\n * header\n * over lines\n */\n'use strict';\n"
           "(function () {\n    // a line comment\n\n    const a = 1; /* trailing */\n"
           "\tconst b = { x: 2,   /* member */\n\t  y: 3 };  \n"
           "    /* one line */\n    return a\n    + b.x;\n})();\n")
    rc, out = minify(src)
    assert rc == 0, rc
    assert out == ("'use strict';\n(function () {\nconst a = 1;\nconst b = { x: 2,\ny: 3 };\n"
                   "return a\n+ b.x;\n})();\n"), repr(out)


def test_keeps_what_is_code():
    # comment-like text in strings and regular expressions, after code with quotes
    lines = ["const u = 'http://example.org/x'; // not removed: code before it",
             "const s = \"/* not a comment */\";",
             "const r = /a\\/\\/b/g; /* kept: a slash before it */",
             "el('td', '/*', 'x'); /* kept: quotes before it */",
             "const d = a / b; /* kept: a slash */",
             "x = 1 /* inner */ + 2;"]
    rc, out = minify("\n".join("  " + l for l in lines) + "\n")
    assert rc == 0, rc
    assert out == "\n".join(lines) + "\n", repr(out)


def test_css_keeps_double_slash():
    # "//" starts no comment in CSS
    rc, out = minify("a {\n  //color: red;\n  /* gone */\n  b: url(//x/y);\n}\n", js=False)
    assert rc == 0, rc
    assert out == "a {\n//color: red;\nb: url(//x/y);\n}\n", repr(out)


def test_refuses_what_it_cannot_handle():
    for src in ("const t = `a\n  b`;\n",               # a template literal spans lines
                "const s = 'a\\\n  b';\n",              # a string continued by a backslash
                "f(); /* opened\n  here */ g();\n",     # an unclosed comment after code
                "/* begins\n */ g();\n",               # code after a comment's end
                "const r = /a*/;\n",                   # an unbalanced "*/"
                "/* never closed\n"):
        rc, out = minify(src)
        assert rc == 3 and out == "", (src, rc, out)


def test_daemon_serves_the_minified_files():
    with Daemon(workers=1) as d:
        st, body, _ = d.http("GET", "/")
        if st == 404:
            print("dashboard not built in (--disable-dashboard): only the script checked")
            return
        with open(os.path.join(DASH, "index.html"), "rb") as f:
            assert body == f.read(), "index.html is served as it is"
        for name, js in (("app.js", True), ("app.css", False)):
            with open(os.path.join(DASH, name)) as f:
                src = f.read()
            rc, want = minify(src, js)
            assert rc == 0, (name, rc)
            st, body, r = d.http("GET", "/" + name)
            assert st == 200, (name, st)
            assert body == want.encode(), "%s: served bytes are not min-assets.awk's" % name
            # app.js loses over a quarter (comments, indentation), app.css a little
            assert len(body) < len(src.encode()) * (0.8 if js else 1), (name, len(body), len(src))
            etag = r.getheader("ETag")
            assert etag == '"%08x-%x"' % (cksum(body), len(body)), (name, etag)
            if js:
                with tempfile.NamedTemporaryFile("wb", suffix=".js") as t:
                    t.write(body)
                    t.flush()
                    p = subprocess.run(["node", "--check", t.name], capture_output=True,
                                       text=True, timeout=30)
                    assert p.returncode == 0, p.stderr


def cksum(data):
    """POSIX cksum(1)'s CRC (embed-assets.sh's ETag), computed here."""
    p = subprocess.run(["cksum"], input=data, capture_output=True, check=True, timeout=10)
    return int(p.stdout.split()[0])


if __name__ == "__main__":
    run([test_removes_comments_and_indentation, test_keeps_what_is_code,
         test_css_keeps_double_slash, test_refuses_what_it_cannot_handle,
         test_daemon_serves_the_minified_files])
