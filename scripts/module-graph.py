#!/usr/bin/env python3
"""Prints the module graph of the broker crate (src/) and checks the architecture's rules.

Each node is a top-level module of the crate (src/X.rs or src/X/), each edge a `crate::X` path
used anywhere in a file of another module (a `use` or a qualified path; `#[cfg(test)]` modules
count too: test code shows dependencies as well). The rules are issue 15's "imports show the
architecture":

- no cycles between top-level modules (except through `lib.rs`, which only lists them);
- nothing under src/cmd/ imports a key module (commands parse and call; `route` owns keys),
  except src/cmd/key.rs, whose subject keys are: it may use `crate::keys::pair` and nothing
  else of `keys` (issue 17);
- nothing under src/doctor/ imports `cli` (doctor takes no clap types);
- src/aws/ imports nothing from `serial`, and src/credentials/ nothing from `aws`;
- AWS SDK types (`aws_sdk_*`, `aws_smithy_*`) appear only under src/aws/ and src/credentials/
  (the credential provider implements the SDK's provider trait).

Usage: scripts/module-graph.py [--dot] [--check]. Exit status 1 when --check finds a violation.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
KEY_MODULES = {"keys", "key_file", "key_agent", "private_file"}
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` groups: every first segment inside the braces.
GROUP = re.compile(r"\bcrate::\{([^}]*)\}", re.S)
SDK = re.compile(r"\b(aws_sdk_[a-z0-9_]+|aws_smithy_[a-z0-9_]+)::")


def files():
    for dirpath, _, names in os.walk(ROOT):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(dirpath, name)
                yield os.path.relpath(path, ROOT), path


def top_module(rel):
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments(text):
    """Comments and string literals (a target name in a string is no dependency)."""
    text = re.sub(r"'(\\.|[^'\\\n])'", "''", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text, flags=re.S)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def imports(text):
    found = set(PATH.findall(text))
    for group in GROUP.findall(text):
        for part in group.split(","):
            part = part.strip()
            if part:
                found.add(re.split(r"[:\s{]", part)[0])
    return found


def main():
    dot, check = "--dot" in sys.argv, "--check" in sys.argv
    modules = {top_module(rel) for rel, _ in files()} - {"lib", "main"}
    edges, where, problems = {}, {}, []
    for rel, path in sorted(files()):
        src = top_module(rel)
        if src in ("lib", "main"):
            continue
        with open(path, encoding="utf-8") as f:
            text = strip_comments(f.read())
        for dst in imports(text) & modules:
            if dst != src:
                edges.setdefault(src, set()).add(dst)
                where.setdefault((src, dst), rel)
        sdk = SDK.findall(text)
        if sdk and src not in ("aws", "credentials"):
            problems.append(f"{rel}: AWS SDK types outside src/aws/ ({', '.join(sorted(set(sdk)))})")
        used = imports(text)
        if src == "cmd" and used & KEY_MODULES and not key_command_uses_pair_only(rel, text, used):
            problems.append(f"{rel}: a command imports a key module ({', '.join(sorted(used & KEY_MODULES))})")
        if src == "doctor" and "cli" in used:
            problems.append(f"{rel}: doctor imports cli (clap types)")
        if src == "aws" and "serial" in used:
            problems.append(f"{rel}: aws imports serial")
        if src == "credentials" and "aws" in used:
            problems.append(f"{rel}: credentials imports aws")
    for cycle in cycles(modules, edges):
        hops = " -> ".join(cycle + [cycle[0]])
        detail = ", ".join(f"{a}->{b} in src/{where[(a, b)]}" for a, b in zip(cycle, cycle[1:] + cycle[:1]))
        problems.append(f"cycle: {hops} ({detail})")

    if dot:
        print("digraph ec2_broker {")
        for src in sorted(edges):
            for dst in sorted(edges[src]):
                print(f'  "{src}" -> "{dst}";')
        print("}")
    else:
        for src in sorted(modules):
            print(f"{src}: {', '.join(sorted(edges.get(src, ()))) or '-'}")
    if problems:
        print(f"\n{len(problems)} architecture problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
    return 1 if check and problems else 0


def key_command_uses_pair_only(rel, text, used):
    """src/cmd/key.rs may reach `keys::pair` (the `key` command's own entry points) and no other key module."""
    if rel != os.path.join("cmd", "key.rs") or used & KEY_MODULES != {"keys"}:
        return False
    tails = re.findall(r"\bcrate::keys\b(::[a-z_]+)?", text)
    return bool(tails) and all(t == "::pair" for t in tails)


def cycles(nodes, edges):
    """Strongly connected components of more than one module (Tarjan), each as one cycle's nodes."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(one_cycle(sorted(comp), edges))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def one_cycle(comp, edges):
    """A simple cycle through the component's first node (breadth-first back to it)."""
    start, members = comp[0], set(comp)
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return list(reversed(path))
            if w in members and w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


if __name__ == "__main__":
    sys.exit(main())
