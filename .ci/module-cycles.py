#!/usr/bin/env python3
"""Fails when source files of a crate refer to each other in a circle.

Each `crate::a::b` path in a file is an edge to the file that defines
module `a::b` (or `a`, when `b` is an item). `mod.rs` files that only
declare and re-export their children are the module's doorway, not a
participant: edges to a module resolve to its deepest file named in the
path. Usage: module-cycles.py SRC_DIR [SRC_DIR ...]
"""
import re
import sys
from pathlib import Path


def module_files(src: Path) -> dict:
    files = {}
    for path in src.rglob("*.rs"):
        rel = path.relative_to(src).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] in ("mod", "lib", "main"):
            parts = parts[:-1]
        files[tuple(parts)] = path
    return files


def resolve(files: dict, segments: list):
    for n in range(len(segments), 0, -1):
        key = tuple(segments[:n])
        if key in files:
            return key
    return None


def edges(src: Path) -> dict:
    files = module_files(src)
    graph = {key: set() for key in files}
    pattern = re.compile(r"crate((?:::[a-z_][a-z0-9_]*)+)")
    for key, path in files.items():
        text = path.read_text()
        text = re.sub(r"//[^\n]*", "", text)
        # `use crate::a::{b, c}` names several modules.
        for m in re.finditer(r"crate::([a-z_][a-z0-9_:]*)::\{([^}]*)\}", text):
            base = [s for s in m.group(1).split("::") if s]
            for item in m.group(2).split(","):
                item = item.strip().split(" ")[0].split("::")
                target = resolve(files, base + [s for s in item if s and s != "self"])
                if target and target != key and target not in key_prefixes(key):
                    graph[key].add(target)
        for m in pattern.finditer(text):
            segments = [s for s in m.group(1).split("::") if s]
            target = resolve(files, segments)
            if target and target != key and target not in key_prefixes(key):
                graph[key].add(target)
    return graph


def key_prefixes(key):
    return {key[:n] for n in range(0, len(key))}


def find_cycle(graph: dict):
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def main():
    failed = False
    for src in sys.argv[1:]:
        cycle = find_cycle(edges(Path(src)))
        if cycle:
            failed = True
            names = " -> ".join("::".join(k) or "(root)" for k in cycle)
            print(f"{src}: modules refer to each other in a circle: {names}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
