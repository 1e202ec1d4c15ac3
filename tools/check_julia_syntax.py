#!/usr/bin/env python3
"""Parses every .jl file under bindings/julia with tree-sitter's Julia grammar.

Julia cannot be installed on our machines, so this is what catches a Julia syntax error (an
`end` too many or too few, an unbalanced bracket, a stray token) before someone with Julia
does. It parses each file and fails on any ERROR or MISSING node of the tree, and on an `end`
that closes no block (which the grammar would otherwise read as a name, see `stray_end`),
printing `file:line:col` of each (1-based; the column counts characters). One check per file; the last
line is "N passed, M failed" and the exit status is non-zero on any failure.

`--self-test` plants syntax errors in copies of each file's text (in memory): a deleted block
`end` (the first and the last), a stray `end`, a deleted `)`, an extra `)`, a deleted `]`. It
checks that the unchanged text parses cleanly and that every planted error is flagged. Its last
line is also "N passed, M failed".

Written for tree-sitter==0.26.1 and tree-sitter-julia==0.23.1 (`Language(tree_sitter_julia
.language())`, `Parser(language)`). The grammar is a close approximation of Julia's, not
Julia's own parser: it knows no semantics, and it rejects a few valid newer constructs (e.g.
`const` fields in a `mutable struct`, Julia 1.8), which the bindings therefore avoid.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JULIA_DIR = ROOT / "bindings/julia"
PINNED = "tree-sitter==0.26.1 tree-sitter-julia==0.23.1"


def make_parser():
    """A tree-sitter parser for Julia, or None (with a message) if the packages are missing."""
    try:
        import tree_sitter
        import tree_sitter_julia
    except ImportError as e:
        print(f"FAIL cannot import tree-sitter ({e}); install it with: pip install {PINNED}")
        return None
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_julia.language()))


def position(source, point):
    """1-based line and character column of a tree-sitter point (row, byte column)."""
    row, byte_col = point
    line_start = 0
    for _ in range(row):
        line_start = source.index(b"\n", line_start) + 1
    col = len(source[line_start:line_start + byte_col].decode("utf-8", errors="replace")) + 1
    return row + 1, col


def stray_end(node, source):
    """Whether `node` is an `end` the grammar took for a name although it closes nothing.

    tree-sitter-julia reads `end` as an identifier anywhere (for `a[end]`), so an `end` too
    many parses without an ERROR node. Julia allows that identifier only inside an index
    (`a[end]`, `a[2:end]`, `a[min(end, 3)]`) or quoted (`:end`).
    """
    if node.type != "identifier" or source[node.start_byte:node.end_byte] != b"end":
        return False
    if node.parent is not None and node.parent.type == "quote_expression":
        return False
    ancestor = node.parent
    while ancestor is not None:
        if ancestor.type == "index_expression":
            return False
        ancestor = ancestor.parent
    return True


def syntax_errors(parser, source):
    """[(line, col, description)] for every ERROR and MISSING node and every stray `end`, in
    source order."""
    tree = parser.parse(source)
    found = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_missing:
            found.append((node.start_byte, node.start_point, f'missing "{node.type}"'))
        elif node.is_error:
            text = source[node.start_byte:node.end_byte].decode("utf-8", errors="replace")
            first = text.strip().splitlines()[0] if text.strip() else ""
            snippet = first[:60] + ("..." if len(first) > 60 else "")
            end_line, end_col = position(source, node.end_point)
            found.append((node.start_byte, node.start_point,
                          f"syntax error near {snippet!r} (the unparsable span ends at {end_line}:{end_col})"))
            continue  # errors nested in an ERROR node only repeat it
        elif stray_end(node, source):
            found.append((node.start_byte, node.start_point, "`end` closes no block"))
        stack.extend(reversed(node.children))
    found.sort(key=lambda f: f[0])
    return [(*position(source, point), what) for _, point, what in found]


def julia_files():
    return sorted(JULIA_DIR.rglob("*.jl"))


def rel(path):
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def tokens(parser, source, kind):
    """(start_byte, end_byte) of every leaf token of the given type (e.g. "end", ")")."""
    out = []
    stack = [parser.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.child_count == 0:
            if node.type == kind and not node.is_missing:
                out.append((node.start_byte, node.end_byte))
        else:
            stack.extend(node.children)
    return sorted(out)


def cut(source, span, replacement=b""):
    start, end = span
    return source[:start] + replacement + source[end:]


def mutations(parser, source):
    """{what: mutated source or None when the file has no place for it}: each must not parse."""
    ends = tokens(parser, source, "end")
    closers = tokens(parser, source, ")")
    brackets = tokens(parser, source, "]")
    return {
        "first block `end` deleted": cut(source, ends[0]) if ends else None,
        "last block `end` deleted": cut(source, ends[-1]) if ends else None,
        "stray `end` added at the top": b"end\n" + source,
        "`end` too many at the bottom": source + b"\nend\n",
        "`)` deleted (unbalanced parenthesis)": cut(source, closers[0]) if closers else None,
        "`)` added (unbalanced parenthesis)": cut(source, closers[0], b"))") if closers else None,
        "`]` deleted (unbalanced bracket)": cut(source, brackets[0]) if brackets else None,
    }


def self_test(parser, files):
    results = []
    for path in files:
        source = path.read_bytes()
        errors = syntax_errors(parser, source)
        results.append((f"{rel(path)}: unchanged text parses", not errors,
                        "; ".join(f"{line}:{col}: {what}" for line, col, what in errors)))
        for what, mutated in mutations(parser, source).items():
            if mutated is None:
                continue  # e.g. no `]` in this file
            if mutated == source:
                results.append((f"{rel(path)}: {what} is caught", False, "mutation did not apply"))
                continue
            found = syntax_errors(parser, mutated)
            where = f" (at {found[0][0]}:{found[0][1]}: {found[0][2]})" if found else ""
            results.append((f"{rel(path)}: {what} is caught{where}", bool(found), "not caught"))
    return results


def main():
    parser = make_parser()
    if parser is None:
        print("0 passed, 1 failed")
        return 1
    files = julia_files()
    if not files:
        print(f"FAIL no .jl files under {rel(JULIA_DIR)}")
        print("0 passed, 1 failed")
        return 1
    if "--self-test" in sys.argv[1:]:
        results = self_test(parser, files)
        for what, ok, why in results:
            print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {why}"))
        failed = sum(1 for _, ok, _ in results if not ok)
        print(f"{len(results) - failed} passed, {failed} failed")
        return 1 if failed else 0
    failed = 0
    for path in files:
        errors = syntax_errors(parser, path.read_bytes())
        for line, col, what in errors:
            print(f"{rel(path)}:{line}:{col}: {what}")
        print(("FAIL " if errors else "ok   ") + str(rel(path)))
        failed += bool(errors)
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
