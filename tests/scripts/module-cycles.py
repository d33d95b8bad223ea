#!/usr/bin/env python3
"""Fails when the top-level modules of a Rust crate import each other in a circle.

Usage: module-cycles.py [SRC_DIR ...]   (default: restore-agent/src)

A top-level module is `src/foo.rs` or `src/foo/` with everything under it.
An edge foo -> bar is any `crate::bar` path in foo's code (in `use` lines,
grouped `use crate::{bar, ...}` or inline paths), a `super::` path that
climbs out of foo, or `crate::Name` for a name that lib.rs re-exports from
bar. Comments, string literals and test code (`#[cfg(test)]` items, files
named `tests.rs` or under a `tests/` folder) do not count: they are not part
of the crate's structure. `lib.rs` (the root that declares the modules) and
`main.rs` (the binary, a user of the library) are not nodes.

Prints every strongly connected component with more than one module (with
one shortest cycle through it) and exits 1; otherwise says so and exits 0.
Python 3 standard library only.
"""

import os
import re
import sys
from collections import deque

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def strip_comments_and_strings(src):
    """The source with comments removed and string/char literal contents blanked."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    if src[i] == "\n":
                        out.append("\n")
                    i += 1
        elif c in "rb" and re.match(r'(br|r)#*"', src[i:i + 260]) and not (i and (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'(br|r)(#*)"', src[i:])
            close = '"' + m.group(2)
            j = src.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""' + "\n" * src.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:i + 12])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def strip_test_items(code):
    """Removes `#[cfg(test)]` items (a `mod x { ... }` or anything up to its `;` or block)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", code)
        if not m:
            return code
        i = m.end()
        brace = code.find("{", i)
        semi = code.find(";", i)
        if brace < 0 or (0 <= semi < brace):
            end = (semi if semi >= 0 else len(code) - 1) + 1
        else:
            depth, j = 0, brace
            while j < len(code):
                if code[j] == "{":
                    depth += 1
                elif code[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            end = j + 1
        code = code[:m.start()] + code[end:]


def split_group(text, start):
    """The top-level items of the `{...}` group opening at `start`, and the index after it."""
    depth, j, items, cur = 0, start, [], []
    while j < len(text):
        ch = text[j]
        if ch == "{":
            depth += 1
            if depth > 1:
                cur.append(ch)
        elif ch == "}":
            depth -= 1
            if depth == 0:
                items.append("".join(cur))
                return items, j + 1
            cur.append(ch)
        elif ch == "," and depth == 1:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        j += 1
    return items, j


def first_segments(code, prefix_re):
    """First path segments after every match of `prefix_re` (e.g. `crate::`)."""
    found = []
    for m in re.finditer(prefix_re, code):
        j = m.end()
        while j < len(code) and code[j].isspace():
            j += 1
        if j < len(code) and code[j] == "{":
            items, _ = split_group(code, j)
            for item in items:
                im = IDENT.match(item.strip())
                if im:
                    found.append(im.group(0))
        else:
            im = IDENT.match(code, j)
            if im:
                found.append(im.group(0))
    return found


def module_of(rel):
    """(top-level module, depth) of a file path relative to src, or None for the root files."""
    parts = rel.split(os.sep)
    if len(parts) == 1:
        name = parts[0][:-3]
        return (None, 0) if name in ("lib", "main") else (name, 1)
    if parts[0] == "bin":
        return (None, 0)
    depth = len(parts) - (1 if parts[-1] == "mod.rs" else 0)
    return parts[0], depth


def analyse(src_dir):
    modules = {}  # module -> list of files
    code_of = {}  # file -> (module, depth, code)
    for root, dirs, files in os.walk(src_dir):
        dirs[:] = sorted(d for d in dirs if d not in ("tests", "testdata"))
        for f in sorted(files):
            if not f.endswith(".rs") or f == "tests.rs":
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src_dir)
            mod, depth = module_of(rel)
            with open(path, encoding="utf-8") as fh:
                code = strip_test_items(strip_comments_and_strings(fh.read()))
            code_of[rel] = (mod, depth, code)
            if mod:
                modules.setdefault(mod, []).append(rel)
    # Names that lib.rs re-exports: `pub use error::Error;` makes `crate::Error` mean `error`.
    reexports = {}
    lib = code_of.get("lib.rs")
    if lib:
        for m in re.finditer(r"pub\s+use\s+([A-Za-z_][A-Za-z0-9_]*)\s*::\s*([^;]+);", lib[2]):
            target, rest = m.group(1), m.group(2).strip()
            if rest.startswith("{"):
                names, _ = split_group(rest, 0)
            else:
                names = [rest.split("::")[-1]]
            for name in names:
                name = name.split(" as ")[-1].strip().split("::")[-1]
                if name:
                    reexports[name] = target
    edges = {m: set() for m in modules}
    for rel, (mod, depth, code) in code_of.items():
        if not mod:
            continue
        refs = first_segments(code, r"(?<![A-Za-z0-9_$])crate\s*::\s*")
        # `super::super::x` from a module `depth` deep climbs to the root at `depth` supers.
        if depth >= 1:
            pattern = r"(?<![A-Za-z0-9_:])" + r"super\s*::\s*" * depth
            refs += first_segments(code, pattern)
        for name in refs:
            target = name if name in modules else reexports.get(name)
            if target and target != mod:
                edges[mod].add(target)
    return modules, edges


def components(edges):
    """Strongly connected components (Tarjan), iteratively."""
    index, low, on_stack, stack, comps = {}, {}, set(), [], []
    counter = [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            advanced = False
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                comps.append(sorted(comp))
    return comps


def shortest_cycle(comp, edges):
    """One shortest cycle through the component's first module."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(edges[node] & members):
            if nxt == start:
                path = [node]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if nxt not in prev:
                prev[nxt] = node
                queue.append(nxt)
    return comp


def main(argv):
    dirs = argv[1:] or ["restore-agent/src"]
    failed = False
    for src_dir in dirs:
        modules, edges = analyse(src_dir)
        cycles = sorted((c for c in components(edges) if len(c) > 1), key=len, reverse=True)
        if not cycles:
            print(f"{src_dir}: no import cycle among its {len(modules)} top-level modules")
            continue
        failed = True
        largest = cycles[0]
        files = sum(len(modules[m]) for m in largest)
        print(f"{src_dir}: import cycle(s) among top-level modules; the largest has {len(largest)} modules ({files} files)")
        for comp in cycles:
            print(f"  modules in a cycle: {', '.join(comp)}")
            print(f"    e.g. {' -> '.join(shortest_cycle(comp, edges))}")
            for m in comp:
                print(f"    {m} uses {', '.join(sorted(edges[m] & set(comp)))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
