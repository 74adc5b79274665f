# min-assets.awk - a .js or .css file without what a browser ignores
#
# usage: awk -v js=1 -f min-assets.awk FILE.js > OUT   (js=0 for CSS)
# (contrib/embed-assets.sh runs it on the dashboard's files at build time)
#
# Conservative: it removes leading and trailing blanks, blank lines, comments on
# lines of their own ("/* ... */", possibly over several lines, and for JS
# "// ..."), and a "/* ... */" ending a line whose code holds no quote or slash
# (so the comment cannot be inside a string or a regular expression).  It relies
# on no string spanning lines: a file where that may not hold (a backtick, a line
# ending in a backslash), or where a "/*" or "*/" is left unbalanced, is refused
# with exit status 3 (the caller embeds it as it is).  Line breaks between code
# lines are kept, so JavaScript's automatic semicolons do not change.  POSIX awk.
function refuse() { bad = 1; exit 3 }
BEGIN { incomment = 0; bad = 0; out = "" }
{
    line = $0
    if (index(line, "`") || line ~ /\\[ \t]*$/) refuse()
    if (incomment) {
        i = index(line, "*/")
        if (i == 0) next
        incomment = 0
        rest = substr(line, i + 2)
        if (rest !~ /^[ \t]*$/) refuse()
        next
    }
    sub(/^[ \t]+/, "", line)
    sub(/[ \t]+$/, "", line)
    if (line == "") next
    if (js && substr(line, 1, 2) == "//") next
    if (substr(line, 1, 2) == "/*") {
        i = index(substr(line, 3), "*/")
        if (i == 0) { incomment = 1; next }
        if (substr(line, i + 4) ~ /^[ \t]*$/) next
    }
    # a trailing comment after code without quotes or slashes
    if (match(line, /\/\*([^*]|\*+[^*\/])*\*+\/$/)) {
        code = substr(line, 1, RSTART - 1)
        if (code !~ /["'\/]/) {
            line = code
            sub(/[ \t]+$/, "", line)
        }
    }
    # what is left must hold no unbalanced comment delimiter
    probe = line
    while ((i = index(probe, "/*")) > 0) {
        j = index(substr(probe, i + 2), "*/")
        if (j == 0) refuse()
        probe = substr(probe, 1, i - 1) substr(probe, i + j + 3)
    }
    if (index(probe, "*/")) refuse()
    out = out line "\n"
}
END {
    if (bad) exit 3
    if (incomment) exit 3
    printf "%s", out
}
