#!/usr/bin/env python3
"""Mutation testing for one module, one mutant at a time (standard library only).

    .venv/bin/python scripts/mutate.py pipeline/model/prune.py tests/unit/test_prune.py [--jobs 2]

Each mutant is one small change to the module's syntax tree:

* comparison flips: `<` -> `<=`, `<=` -> `<`, `>` -> `>=`, `>=` -> `>`, `==` <-> `!=`,
  `in` <-> `not in`, `is` <-> `is not`;
* boolean flips: `and` <-> `or`, `True` <-> `False`, `not x` -> `x`;
* constants: a number +1 and -1 (so `0` <-> `1`), a string -> `""` (an empty one -> `"XX"`),
  including the literal parts of f-strings;
* `return X` -> `return None`;
* a simple statement replaced with `pass` (an assignment, a call, `raise`, `break`, an early
  `return` ...).

Docstrings, imports and annotations are not mutated, nor is any line that carries the comment
`# pragma: no mutate`. The mutant is written over the module in a temporary copy of its package
(the working tree is never touched), and the given tests run against it with `pytest -x -q`,
the copy first on sys.path, with a time limit. A mutant is *killed* when the tests fail, a
*timeout* when they do not finish (counted as killed), *survived* when they pass.

Equivalent mutants (no test can tell them apart from the original) are listed in
`scripts/mutate-equivalent.txt`, one `module:line:description` a line, as this script prints
them; they are counted separately, and the figure that matters is "non-equivalent killed".

Options: --jobs N (parallel workers, each with its own copy), --timeout S (per mutant; default
from the baseline run), --list (print the mutants, run nothing), --only 3,7 (run some),
--fail-under PCT (exit 1 below that non-equivalent kill rate), --json FILE.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EQUIVALENT = ROOT / "scripts" / "mutate-equivalent.txt"
NO_MUTATE = "pragma: no mutate"

_FLIPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_SIMPLE_STATEMENTS = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Raise, ast.Assert,
                      ast.Delete, ast.Break, ast.Continue, ast.Return)


@dataclass
class Mutant:
    id: int
    line: int
    col: int
    description: str
    status: str = "pending"        # killed | survived | timeout | equivalent-* | error
    seconds: float = 0.0
    equivalent: bool = False
    output: str = field(default="", repr=False)


def _snippet(node: ast.AST, limit: int = 60) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every node we build
        text = type(node).__name__
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Mutator(ast.NodeTransformer):
    """Walks the tree in a fixed order; every possible mutation is a numbered site.

    With `target=None` it only records the sites; with `target=N` it applies the Nth one.
    """

    def __init__(self, target: int | None, skip_lines: set[int]):
        self.target = target
        self.skip_lines = skip_lines
        self.counter = 0
        self.sites: list[tuple[int, int, str]] = []
        self.applied: tuple[int, int, str] | None = None

    # -- bookkeeping ------------------------------------------------------------------------

    def _site(self, node: ast.AST, description: str, make) -> ast.AST | None:
        """Register one mutation of `node`; return the replacement when it is the target."""
        line = getattr(node, "lineno", 0)
        if line in self.skip_lines:
            return None
        index = self.counter
        self.counter += 1
        site = (line, getattr(node, "col_offset", 0), description)
        self.sites.append(site)
        if index == self.target:
            self.applied = site
            new = make()
            return ast.copy_location(new, node) if isinstance(new, ast.AST) else new
        return None

    # -- what is never mutated --------------------------------------------------------------

    def _visit_body(self, body: list) -> list:
        out = []
        for i, stmt in enumerate(body):
            if i == 0 and _is_docstring(stmt):
                out.append(stmt)
                continue
            new = self._statement(stmt, last=(i == len(body) - 1))
            out.append(new)
        return out

    def _statement(self, stmt: ast.stmt, last: bool) -> ast.stmt:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return stmt
        if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
            return stmt                       # a bare declaration (a dataclass field)
        if isinstance(stmt, _SIMPLE_STATEMENTS):
            # deleting the last `return X` of a block is the same mutant as `return None`
            deletable = not (isinstance(stmt, ast.Return) and stmt.value is not None and last)
            if deletable:
                new = self._site(stmt, f"delete `{_snippet(stmt)}`", lambda: ast.Pass())
                if new is not None:
                    return new
        return self.visit(stmt)

    def generic_visit(self, node: ast.AST) -> ast.AST:
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment", "type_params"):
                continue                      # annotations are not evaluated here
            if isinstance(value, list):
                if value and isinstance(value[0], ast.stmt):
                    setattr(node, name, self._visit_body(value))
                    continue
                new_values = []
                for item in value:
                    if isinstance(item, ast.AST):
                        item = self.visit(item)
                        if item is None:
                            continue
                    new_values.append(item)
                value[:] = new_values
            elif isinstance(value, ast.AST):
                new = self.visit(value)
                if new is None:
                    delattr(node, name)
                else:
                    setattr(node, name, new)
        return node

    # -- the mutations ----------------------------------------------------------------------

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        for i, op in enumerate(node.ops):
            flip = _FLIPS.get(type(op))
            if flip is None:
                continue

            def make(i=i, flip=flip):
                new = copy.deepcopy(node)
                new.ops[i] = flip()
                return new
            new = self._site(node, f"`{_snippet(node)}` -> `{_snippet(make())}`", make)
            if new is not None:
                return new
        return self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        def make():
            new = copy.deepcopy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            return new
        before, after = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        new = self._site(node, f"`{before}` -> `{after}` in `{_snippet(node)}`", make)
        if new is not None:
            return new
        return self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        if isinstance(node.op, ast.Not):
            new = self._site(node, f"`{_snippet(node)}` -> `{_snippet(node.operand)}`",
                             lambda: copy.deepcopy(node.operand))
            if new is not None:
                return new
        return self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> ast.AST:
        if node.value is not None and not (isinstance(node.value, ast.Constant)
                                           and node.value.value is None):
            new = self._site(node, f"`{_snippet(node)}` -> `return None`",
                             lambda: ast.Return(value=ast.Constant(None)))
            if new is not None:
                return new
        return self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        options: list = []
        if isinstance(value, bool):
            options = [not value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            options = [value + 1, value - 1]
        elif isinstance(value, str):
            options = ["" if value else "XX"]
        for option in options:
            new = self._site(node, f"{value!r} -> {option!r}", lambda o=option: ast.Constant(o))
            if new is not None:
                return new
        return node

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.AST:
        # the literal parts of an f-string are string constants like any other
        return self.generic_visit(node)


def _is_docstring(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str))


def _skip_lines(source: str) -> set[int]:
    return {n for n, line in enumerate(source.splitlines(), 1) if NO_MUTATE in line}


def list_sites(source: str) -> list[tuple[int, int, str]]:
    tree = ast.parse(source)
    m = Mutator(None, _skip_lines(source))
    m.visit(tree)
    # the same change twice on one line (two `','` constants) gets " (2nd)", " (3rd)" ...
    seen: dict[tuple[int, str], int] = {}
    sites = []
    for line, col, desc in m.sites:
        n = seen[(line, desc)] = seen.get((line, desc), 0) + 1
        if n > 1:
            desc += f" ({n}{ {2: 'nd', 3: 'rd'}.get(n, 'th')})"
        sites.append((line, col, desc))
    return sites


def mutant_source(source: str, index: int) -> str:
    tree = ast.parse(source)
    m = Mutator(index, _skip_lines(source))
    tree = m.visit(tree)
    if m.applied is None:
        raise IndexError(index)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"


# -- running the tests -----------------------------------------------------------------------

def _package_root(module: Path) -> Path:
    """The top package directory that contains `module` (walks up while __init__.py exists)."""
    top = module.parent
    if not (top / "__init__.py").exists():
        raise SystemExit(f"{module} is not inside a package")
    while (top.parent / "__init__.py").exists():
        top = top.parent
    return top


class Workspace:
    """A temporary copy of the package; `run` puts a variant of the module in it and tests."""

    def __init__(self, module: Path, tests: list[str], timeout: float | None):
        self.package = _package_root(module)
        self.dir = Path(tempfile.mkdtemp(prefix="mutate-"))
        shutil.copytree(self.package, self.dir / self.package.name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.target = self.dir / module.relative_to(self.package.parent)
        self.tests = [str(Path(t).resolve()) for t in tests]
        self.timeout = timeout

    def run(self, source: str) -> tuple[str, float, str]:
        self.target.write_text(source)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.dir), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["PYTHONDONTWRITEBYTECODE"] = "1"     # no stale .pyc between two mutants
        env["PYTHONHASHSEED"] = "0"
        # Import the package from the copy before pytest starts: a conftest that puts the
        # repository root on sys.path then finds it already imported.
        code = (f"import sys, {self.package.name}, pytest; "
                f"sys.exit(pytest.main({['-x', '-q', '-p', 'no:cacheprovider', *self.tests]!r}))")
        start = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=self.dir, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return "timeout", time.monotonic() - start, out
        seconds = time.monotonic() - start
        if proc.returncode == 0:
            return "survived", seconds, out
        if proc.returncode in (1,):           # tests failed
            return "killed", seconds, out
        # 2: interrupted (a collection error: the mutant broke an import), 3/4: pytest errors
        return ("killed" if proc.returncode == 2 else "error"), seconds, out

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def load_equivalent(path: Path, module: str) -> set[tuple[int, str]]:
    entries: set[tuple[int, str]] = set()
    if not path.exists():
        return entries
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, lineno, description = line.split(":", 2)
        if name.strip() == module:
            entries.add((int(lineno), description.strip()))
    return entries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("module", help="the module to mutate, e.g. pipeline/model/prune.py")
    ap.add_argument("tests", nargs="+", help="test files or node ids for pytest")
    ap.add_argument("--jobs", "-j", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per mutant (default: 5 x the baseline run, at least 10)")
    ap.add_argument("--equivalent", type=Path, default=DEFAULT_EQUIVALENT)
    ap.add_argument("--list", action="store_true", help="print the mutants and exit")
    ap.add_argument("--only", default="", help="comma-separated mutant ids to run")
    ap.add_argument("--fail-under", type=float, default=None, metavar="PCT")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--verbose", "-v", action="store_true", help="print each mutant as it ends")
    args = ap.parse_args(argv)

    module_path = Path(args.module).resolve()
    try:
        module_name = str(module_path.relative_to(ROOT))
    except ValueError:
        module_name = args.module
    source = module_path.read_text()
    sites = list_sites(source)
    mutants = [Mutant(i, line, col, desc) for i, (line, col, desc) in enumerate(sites)]
    equivalent = load_equivalent(args.equivalent, module_name)
    for m in mutants:
        m.equivalent = (m.line, m.description) in equivalent
    for line, description in sorted(equivalent - {(m.line, m.description) for m in mutants}):
        print(f"warning: {args.equivalent.name} lists {module_name}:{line}:{description}, "
              "which is no mutant of the module (stale line number?)", file=sys.stderr)

    if args.list:
        for m in mutants:
            flag = "  [equivalent]" if m.equivalent else ""
            print(f"#{m.id:<4} {module_name}:{m.line}:{m.description}{flag}")
        return 0
    if args.only:
        wanted = {int(x) for x in args.only.split(",") if x.strip()}
        mutants = [m for m in mutants if m.id in wanted]

    # Baseline: the unmutated module (as ast.unparse writes it) must pass, and a sabotaged one
    # must fail, which proves that the tests import the copy and not the working tree.
    probe = Workspace(module_path, args.tests, None)
    try:
        status, base_seconds, out = probe.run(ast.unparse(ast.parse(source)) + "\n")
        if status != "survived":
            print(out)
            print("baseline: the tests fail on the unmutated module", file=sys.stderr)
            return 2
        status, _, out = probe.run("raise ImportError('mutate.py sabotage')\n")
        if status == "survived":
            print("baseline: the tests pass with a module that cannot import: they do not use "
                  "the temporary copy (or do not import the module)", file=sys.stderr)
            return 2
    finally:
        probe.close()
    timeout = args.timeout or max(10.0, 5 * base_seconds)
    print(f"{module_name}: {len(sites)} mutants, baseline {base_seconds:.1f} s, "
          f"timeout {timeout:.0f} s, {args.jobs} job(s)", flush=True)

    pool: list[Workspace] = [Workspace(module_path, args.tests, timeout) for _ in range(max(1, args.jobs))]
    free = list(pool)
    lock = threading.Lock()

    def work(m: Mutant) -> Mutant:
        with lock:
            ws = free.pop()
        try:
            m.status, m.seconds, out = ws.run(mutant_source(source, m.id))
            if m.status != "killed":
                m.output = out[-2000:]
        finally:
            with lock:
                free.append(ws)
        if args.verbose:
            print(f"  #{m.id:<4} {m.status:<8} {module_name}:{m.line}:{m.description}", flush=True)
        return m

    try:
        with ThreadPoolExecutor(max_workers=len(pool)) as ex:
            done = list(ex.map(work, mutants))
    finally:
        for ws in pool:
            ws.close()

    report(module_name, done)
    real = [m for m in done if not m.equivalent]
    killed = sum(m.status in ("killed", "timeout") for m in real)
    rate = 100.0 * killed / len(real) if real else 100.0
    if args.json:
        args.json.write_text(json.dumps({"module": module_name, "mutants": [asdict(m) for m in done],
                                         "non_equivalent": len(real), "killed": killed,
                                         "rate": rate}, indent=2))
    if args.fail_under is not None and rate < args.fail_under:
        return 1
    return 0


def report(module: str, done: list[Mutant]) -> None:
    by = {s: [m for m in done if m.status == s] for s in ("killed", "timeout", "survived", "error")}
    print()
    for m in done:
        tag = " (listed equivalent)" if m.equivalent else ""
        print(f"#{m.id:<4} {m.status:<8} {m.seconds:5.1f}s  {module}:{m.line}:{m.description}{tag}")
    total = len(done)
    eq = [m for m in done if m.equivalent]
    real = [m for m in done if not m.equivalent]
    killed_all = len(by["killed"]) + len(by["timeout"])
    killed_real = sum(m.status in ("killed", "timeout") for m in real)
    print()
    print(f"{module}: {total} mutants: {len(by['killed'])} killed, {len(by['timeout'])} timeout, "
          f"{len(by['survived'])} survived, {len(by['error'])} error")
    if total:
        print(f"kill rate (all mutants): {killed_all}/{total} = {100.0 * killed_all / total:.1f}%")
    if real:
        print(f"non-equivalent killed: {killed_real}/{len(real)} = "
              f"{100.0 * killed_real / len(real):.1f}%  ({len(eq)} listed as equivalent)")
    stale = [m for m in eq if m.status in ("killed", "timeout")]
    for m in stale:
        print(f"warning: listed as equivalent but killed: {module}:{m.line}:{m.description}")
    survivors = [m for m in real if m.status in ("survived", "error")]
    if survivors:
        print("\nsurvivors:")
        for m in survivors:
            print(f"  {module}:{m.line}:{m.description}" + ("  [error]" if m.status == "error" else ""))


if __name__ == "__main__":
    sys.exit(main())
