#!/usr/bin/env python3
"""Prints the import graph between the top-level modules of the `weft` binary
(control/src/*) and fails if it has a circle. Usage: scripts/module-graph.py"""
import os, re, sys
from collections import defaultdict

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "control", "src")
mods = sorted(n[:-3] if n.endswith(".rs") else n for n in os.listdir(root) if n not in ("main.rs", "lib.rs"))
edges = defaultdict(set)
for m in mods:
    path = os.path.join(root, m)
    files = [path + ".rs"] if os.path.isfile(path + ".rs") else [
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")]
    for f in files:
        text = open(f).read()
        text = text.split("#[cfg(test)]")[0]  # unit tests may reach anywhere
        text = re.sub(r"//.*", "", text)  # comments name modules without importing them
        for t in re.findall(r"crate::([a-z_]+)", text):
            if t != m and t in mods:
                edges[m].add(t)
for m in mods:
    print(f"{m:10} -> {', '.join(sorted(edges[m])) or '(nothing)'}")
# Circles: depth-first search for a back edge.
state = {}
def visit(m, stack):
    state[m] = 1
    for n in sorted(edges[m]):
        if state.get(n) == 1:
            print("circle: " + " -> ".join(stack[stack.index(n):] + [n]), file=sys.stderr)
            sys.exit(1)
        if n not in state:
            visit(n, stack + [n])
    state[m] = 2
for m in mods:
    if m not in state:
        visit(m, [m])
print("no circle")
