#!/usr/bin/python3
"""editors_check.py: the editor grammars (editors/) against the compiler and the models.

    /usr/bin/python3 tests/cli/editors_check.py VIM_DUMP FILE.bp...

1. The words of the language, read from the compiler's own tables (compiler/check.c,
   compiler/check_train.c), equal the keyword lists of the Vim syntax file and of the
   TextMate grammar, and neither lists a word the compiler does not know.
2. TextMate: every line of every FILE.bp is scanned the way a TextMate engine does
   (at each place the earliest match of the grammar's patterns, the first pattern on a
   tie); every word and number must get a scope, the model's name included.
3. Vim: VIM_DUMP holds, for every word of every file (as vim dumped it: file, line,
   column, word, syntax group), the group; every word must have one. VIM_DUMP "-":
   no vim to dump with, and this check is left out.
Prints one "ok"/"FAIL" line per check; exit status 1 on any failure.
"""
import json, re, sys

ROOT = __file__.rsplit("/tests/", 1)[0]
fails = 0


def check(ok, what):
    global fails
    print(("ok   " if ok else "FAIL ") + what)
    fails += not ok


def src(path):
    return open(f"{ROOT}/{path}").read()


def strings(text):
    return set(re.findall(r'"([a-z][a-z0-9_-]*)"', text))


check_c, train_c, ir_c = src("compiler/check.c"), src("compiler/check_train.c"), src("compiler/ir.c")
words = set()
words |= strings(re.search(r"LAYER_NAMES\[[^]]*\] = \{([^}]*)\}", check_c).group(1))
words |= strings(re.search(r"SETTINGS\[[^]]*\] = \{([^}]*)\}", train_c).group(1))
words |= set(re.findall(r'\{ "([a-z_0-9]+)", BP_OPT_', check_c + train_c))
words |= strings(re.search(r"BP_FEEDBACK_NAMES\[[^]]*\] = \{([^}]*)\}", ir_c).group(1))
words |= strings(re.search(r"pads\[2\] = \{([^}]*)\}", check_c).group(1))
words |= set(re.findall(r'"([a-z0-9]+)"', re.search(r"BP_PRECISION_NAMES\[[^]]*\] = \{([^}]*)\}", ir_c).group(1)))
words |= set(re.findall(r'\{ "([a-z0-9-]+)", \d+, \d+, \d+, \d+ \}', train_c))
words |= {"model", "train", "test"}  # the block keywords (grammar/bp.l), `val test`

vim = src("editors/vim/syntax/bp.vim")
vim_words = set()
for line in vim.splitlines():
    m = re.match(r"syn keyword\s+(\w+)\s+(.*)", line)
    if m and m.group(1) != "bpTodo":
        vim_words |= set(m.group(2).split())
check(vim_words == words, "vim: the keywords are the compiler's"
      + ("" if vim_words == words else f" (missing {sorted(words - vim_words)}, unknown {sorted(vim_words - words)})"))

grammar = json.loads(src("editors/bp.tmLanguage.json"))
tm_words = set()
for p in grammar["patterns"]:
    m = re.fullmatch(r"\\b\((.*)\)\\b(\(\?!-\))?", p["match"])
    if m and "name" in p:
        tm_words |= set(m.group(1).split("|"))
check(tm_words == words, "textmate: the keywords are the compiler's"
      + ("" if tm_words == words else f" (missing {sorted(words - tm_words)}, unknown {sorted(tm_words - words)})"))

pats = [(re.compile(p["match"]), p) for p in grammar["patterns"]]


def scan(line):
    """(start, end, scope) of each token, as a TextMate engine scans one line."""
    out, pos = [], 0
    while pos < len(line):
        best = None
        for rx, p in pats:
            m = rx.search(line, pos)
            if m and m.end() > m.start() and (best is None or m.start() < best[0].start()):
                best = (m, p)
        if not best:
            break
        m, p = best
        if "captures" in p:
            for k, c in p["captures"].items():
                out.append((m.start(int(k)), m.end(int(k)), c["name"]))
        else:
            out.append((m.start(), m.end(), p["name"]))
        pos = m.end()
    return out


# the lexer's words (grammar/bp.l): a number, the x of dimensions (32x32x3), a name
TOKEN = r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?<=[0-9. ])x(?=\s*[-.0-9])|[A-Za-z_][A-Za-z0-9_-]*"
files = sys.argv[2:]
bad = []
for f in files:
    for n, line in enumerate(open(f), 1):
        toks = scan(line.rstrip("\n"))
        for m in re.finditer(TOKEN, line.split("#")[0]):
            if not any(s <= m.start() and m.end() <= e for s, e, _ in toks):
                bad.append(f"{f}:{n}:{m.start() + 1}: {m.group()}")
check(not bad, f"textmate: every word and number of {len(files)} files has a scope"
      + ("" if not bad else ": " + ", ".join(bad[:10])))

if sys.argv[1] != "-":  # "-": no vim here (the caller said so with a skip line)
    dump = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
    nowords = [f"{d[0]}:{d[1]}:{d[2]}: {d[3]}" for d in dump if len(d) < 5 or not d[4]]
    seen = {d[0] for d in dump}
    check(seen == set(files), f"vim: dumped the words of all {len(files)} files")
    check(dump and not nowords, f"vim: every word and number ({len(dump)}) has a syntax group"
          + ("" if not nowords else ": " + ", ".join(nowords[:10])))
sys.exit(1 if fails else 0)
