#!/usr/bin/env python3
"""doxygen_filter.py: Doxygen's INPUT_FILTER for the public headers.

The headers document each declaration the project's way, in plain C
comments that read as they are: a comment directly above a declaration
(no blank line between) documents it, one above several declarations
documents each of them, and a comment after a struct member or enum value
on its line documents that member. This filter hands Doxygen the same text
with those comments in its own form: "/*" becomes "/**" above a
declaration, "/*<" ... becomes "/**<" after a member, a comment above
several declarations is wrapped in a member group ("/** @{ */" ...
"/** @} */", its text given to each by DISTRIBUTE_GROUP_DOC), and the
file's first comment becomes its @file description. Banners
("/* ---- */") and comments followed by a blank line stay plain. Lines
are neither added nor removed (group markers share existing lines), so
Doxygen's warnings name the header's real line numbers.

Usage (by Doxygen): doxygen_filter.py HEADER  -> the filtered text on stdout
"""
import re
import sys

BANNER = re.compile(r'^\s*/\*\s*-+\s*\*/\s*$')
COMMENT_START = re.compile(r'^(\s*)/\*(?!\*)')
# A code line ending in a plain comment: "int x; /* ... */", "A, /* ... */"
TRAILING = re.compile(r'^(\s*[^\s/*].*?)/\*(?![*<])')
NOT_A_DECLARATION = ('/*', '#endif', '#include', '#ifdef', '#ifndef', '#else',
                     '#if ', '}', 'extern "C"')


def is_declaration_start(line):
    s = line.strip()
    return bool(s) and not s.startswith(NOT_A_DECLARATION)


def declarations_after(lines, k):
    """How many declarations follow from line k up to a blank line or
    comment (a declaration may span lines; one ends with ';' at depth 0)."""
    count, depth, open_decl = 0, 0, False
    while k < len(lines) and is_declaration_start(lines[k]) or (
            k < len(lines) and open_decl and lines[k].strip()):
        line = lines[k]
        if not open_decl:
            count += 1
            open_decl = True
        code = re.sub(r'/\*.*?\*/', '', line)
        depth += code.count('{') + code.count('(') - code.count('}') - \
            code.count(')')
        if depth <= 0 and (code.rstrip().endswith(';') or
                           code.rstrip().endswith('}') or
                           (code.strip().startswith('#define') and
                            not code.rstrip().endswith('\\'))):
            open_decl = False
        k += 1
    return count, k


def convert(text):
    lines = text.split('\n')
    out = list(lines)
    i, first = 0, True
    while i < len(lines):
        line = lines[i]
        m = COMMENT_START.match(line)
        if m:
            j = i
            while '*/' not in lines[j]:
                j += 1
            if first:
                out[i] = line.replace('/*', '/** @file', 1)
                first = False
                i = j + 1
                continue
            after = lines[j][lines[j].index('*/') + 2:].strip()
            if not BANNER.match(line) and not after and \
                    j + 1 < len(lines) and is_declaration_start(lines[j + 1]):
                n, end = declarations_after(lines, j + 1)
                if n > 1:  # a member group, one text for each
                    out[i] = line.replace('/*', '/** @{ */ /**', 1)
                    if end < len(lines) and not lines[end].strip():
                        out[end] = '/** @} */'  # the blank line after
                    else:
                        out[end - 1] = lines[end - 1] + ' /** @} */'
                else:
                    out[i] = line.replace('/*', '/**', 1)
            i = j + 1
            continue
        t = TRAILING.match(line)
        if t:
            out[i] = line[:t.end() - 2] + '/**<' + line[t.end():]
        first = first and not line.strip()
        i += 1
    return '\n'.join(out)


if __name__ == '__main__':
    with open(sys.argv[1], encoding='utf-8') as f:
        sys.stdout.write(convert(f.read()))
