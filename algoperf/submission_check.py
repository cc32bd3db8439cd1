"""Static checks of a submission against AlgoPerf's rules, before any job starts.

`algoperf check` reads the submission's source with Python's :mod:`ast` (nothing is imported or
run) and reports what the rules forbid and the source shows: the submission functions and their
signatures (the runner's own call-compatibility rule, `algoperf.submission`), imports of the
harness beyond the submission API, identifying the workload (its class, its name or a
fingerprint of its constants) to pick special-cased logic or hyperparameters, touching the
runner's clock or timing state, modifying the fixed workload, changing environment variables
and writing or deleting files outside the run. The rule texts are AlgoPerf v0.6's
(docs/submissions.md, "What a submission may not do"); every check names its rule.

A static check sees what the code says, not what it computes: a workload identified through
computed strings or indirect lookups passes, so a clean report is no certificate. It flags only
forms that have no generic use, so that AlgoPerf's own baselines and the published leaderboard
submissions pass (tests/test_submission_check.py).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from collections.abc import Iterable, Iterator
from pathlib import Path

from algoperf import spec, submission
from algoperf.errors import UserError

VIOLATION = "violation"
WARNING = "warning"

# Rule ids, each a short name the report prints.
API = "submission-api"
IMPORTS = "imports"
IDENTITY = "workload-identity"
CLOCK = "clock"
FIXED = "fixed-functions"
ENVIRONMENT = "environment"
FILES = "files"
EVAL_BATCH = "eval-batch-size"
THREADS = "untimed-work"
SEARCH_SPACE = "search-space"
RULES_VERSION = "rules-version"

# The modules of the harness a submission may import (AlgoPerf's submission API): the spec and
# the compatibility helpers, under the v0.6 and the v0.5 package name.
PACKAGES = ("algoperf", "algorithmic_efficiency")
ALLOWED_MODULES = ("spec", "pytorch_utils", "jax_sharding_utils", "param_utils", "random_utils")
# Functions that receive the workload's name and may use it (the batch size is per workload).
NAME_FUNCTIONS = ("get_batch_size", "get_eval_batch_size")
# Workload constants that, compared for equality with a number, fingerprint one workload.
FINGERPRINTS = ("num_train_examples", "num_eval_train_examples", "num_validation_examples",
                "num_test_examples", "validation_target_value", "test_target_value",
                "max_allowed_runtime_sec", "eval_period_time_sec", "step_hint",
                "eval_batch_size", "train_mean", "train_stddev")
# Calls that delete or move files, wherever they point.
DELETES = ("os.remove", "os.unlink", "os.rmdir", "os.removedirs", "os.rename", "os.renames",
           "os.replace", "os.truncate", "shutil.rmtree", "shutil.move")
# Calls that write at the path of their (last, for copies) argument.
WRITES_AT = ("os.mkdir", "os.makedirs", "os.symlink", "os.link", "os.chmod", "os.chown",
             "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree")
COMMANDS = ("os.system", "os.popen", "os.execv", "os.execve", "os.execl", "os.execvp",
            "os.spawnv", "os.spawnl", "os.posix_spawn", "pty.spawn", "subprocess.run",
            "subprocess.call", "subprocess.check_call", "subprocess.check_output",
            "subprocess.Popen", "subprocess.getoutput", "subprocess.getstatusoutput")
PATH_WRITES = ("write_text", "write_bytes", "touch", "mkdir", "symlink_to", "hardlink_to")
PATH_DELETES = ("unlink", "rmdir")
FRAMES = ("sys._getframe", "inspect.currentframe", "inspect.stack", "inspect.getouterframes",
          "inspect.trace", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
          "sys.settrace", "sys.setprofile", "threading.settrace", "threading.setprofile")
FRAME_ATTRIBUTES = ("f_back", "f_locals", "f_globals", "tb_frame", "gi_frame", "cr_frame")
ENVIRON_METHODS = ("update", "setdefault", "pop", "popitem", "clear", "__setitem__",
                   "__delitem__")
THREAD_STARTERS = ("threading.Thread", "threading.Timer", "_thread.start_new_thread",
                   "multiprocessing.Process", "multiprocessing.Pool", "os.fork",
                   "concurrent.futures.ThreadPoolExecutor",
                   "concurrent.futures.ProcessPoolExecutor")
# What the runner's clock calls besides the time module: replacing them stops the clock
# waiting for the device (algoperf.frameworks.syncer, algoperf.distributed).
CLOCK_FUNCTIONS = ("jax.block_until_ready", "torch.cuda.synchronize",
                   "torch.distributed.all_reduce")
TRAIN_STATE_WRITES = ("update", "setdefault", "pop", "popitem", "clear", "__setitem__",
                      "__delitem__")


@dataclasses.dataclass(frozen=True)
class Finding:
    """One place where the submission breaks (or, for a warning, may break) a rule."""

    path: Path
    line: int
    rule: str
    message: str
    severity: str = VIOLATION

    def __str__(self) -> str:
        tag = "" if self.severity == VIOLATION else " (warning)"
        return f"{self.path}:{self.line}: {self.rule}{tag}: {self.message}"


def _workload_names() -> frozenset[str]:
    from algoperf.workloads import registry

    return frozenset(registry.WORKLOADS)


def _identity_attributes() -> frozenset[str]:
    """The workload attributes that name it or its variant: this project's registry name
    (`workload_name`) and every variant setting, less the public constants of `spec.Workload`."""
    from algoperf.workloads import registry

    settings = {name for row in registry.WORKLOADS.values() for name in (row.settings or {})}
    public = {n for n in dir(spec.Workload) if not n.startswith("_")}
    return frozenset({"workload_name", "variant_settings", *settings} - public)


# --- reading the source ---------------------------------------------------------------------


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Each name an import binds, to the dotted name it stands for (``t`` -> ``time``,
    ``rmtree`` -> ``shutil.rmtree``), over the whole file."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``os.path.join`` for an attribute chain on an imported name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


def _string(node: ast.AST) -> str | None:
    """The leading text of a string literal or f-string."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _string(node.values[0])
    return None


def _outside_path(node: ast.AST | None) -> str | None:
    """The path literal of ``node`` when it points outside the run's folder: absolute, in
    the home directory or climbing with ``..``."""
    if node is None:
        return None
    if isinstance(node, ast.Call) and node.args:  # Path("/x"), os.path.join("/x", ...)
        return _outside_path(node.args[0])
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # Path("/x") / "y"
        return _outside_path(node.left)
    text = _string(node)
    if text is None:
        return None
    if text.startswith(("/", "~", "\\")) or ".." in Path(text).parts:
        return text
    return None


def _write_mode(call: ast.Call, mode_index: int) -> bool:
    """True when the open-like ``call`` has a literal mode that writes."""
    mode = call.args[mode_index] if len(call.args) > mode_index else None
    for kw in call.keywords:
        if kw.arg == "mode":
            mode = kw.value
    text = _string(mode) if mode is not None else None
    return text is not None and any(c in text for c in "wax+")


def _literal_names(node: ast.AST, names: frozenset[str]) -> list[str]:
    """The workload names among the string literals of ``node`` (a constant, or a tuple, list
    or set of them)."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [e.value for e in items
            if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in names]


def _is_number(node: ast.AST) -> bool:
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return bool(items) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, int | float)
        and not isinstance(e.value, bool) for e in items)


class _Visitor(ast.NodeVisitor):
    """Walks one file and collects its findings; tracks the enclosing function and the local
    names bound to the workload argument."""

    def __init__(self, path: Path, tree: ast.Module) -> None:
        self.path = path
        self.aliases = _aliases(tree)
        self.names = _workload_names()
        self.identity = _identity_attributes()
        self.findings: list[Finding] = []
        self.functions: list[str] = []
        self.workload_refs: list[set[str]] = [{"workload"}]
        self.tables = self._name_tables(tree)

    def report(self, node: ast.AST, rule: str, message: str, severity: str = VIOLATION) -> None:
        self.findings.append(Finding(self.path, getattr(node, "lineno", 0), rule, message,
                                     severity))

    def _name_tables(self, tree: ast.Module) -> dict[str, int]:
        """Module-level names bound to a dict keyed by workload names."""
        tables = {}
        for node in tree.body:
            targets, value = [], None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            if isinstance(value, ast.Dict) and any(
                    k is not None and _literal_names(k, self.names) for k in value.keys):
                tables.update({t.id: node.lineno for t in targets if isinstance(t, ast.Name)})
        return tables

    # -- scope -------------------------------------------------------------------------------

    @property
    def in_name_function(self) -> bool:
        return any(f in NAME_FUNCTIONS for f in self.functions)

    def is_workload(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id in self.workload_refs[-1]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        refs = set(self.workload_refs[-1])
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        refs -= {a.arg for a in args}  # a parameter shadows an outer alias...
        refs |= {a.arg for a in args if a.arg == "workload"}  # ...unless it is the workload
        self.functions.append(node.name)
        self.workload_refs.append(refs)
        if node.name in NAME_FUNCTIONS:
            self._check_name_kept(node)
        for stmt in node.body:
            self.visit(stmt)
        self.workload_refs.pop()
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _check_name_kept(self, node: ast.FunctionDef) -> None:
        """get_batch_size may use the workload's name for the batch size only: storing it
        where other functions read it identifies the workload to them."""
        if not node.args.args:
            return
        name = node.args.args[0].arg
        stored = {n for s in ast.walk(node) if isinstance(s, ast.Global | ast.Nonlocal)
                  for n in s.names}
        for s in ast.walk(node):
            if not isinstance(s, ast.Assign | ast.AugAssign | ast.AnnAssign) or s.value is None:
                continue
            if not any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(s.value)):
                continue
            targets = s.targets if isinstance(s, ast.Assign) else [s.target]
            for t in targets:
                if (isinstance(t, ast.Name) and t.id in stored) or isinstance(
                        t, ast.Attribute | ast.Subscript):
                    self.report(s, IDENTITY, f"{node.name} stores the workload's name where "
                                "other functions can read it; it may use the name only to "
                                "choose the batch size")

    def visit_Assign(self, node: ast.Assign) -> None:
        # Track `w = workload` so that `type(w)` is seen too.
        if self.is_workload(node.value):
            self.workload_refs[-1] |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for target in node.targets:
            self._check_store(target, node)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._check_store(node.target, node)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._check_store(node.target, node)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_store(target, node)
        self.generic_visit(node)

    # -- imports -----------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._check_module(node, a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module is None or node.level:
            return
        if node.module in PACKAGES:
            for a in node.names:
                self._check_module(node, f"{node.module}.{a.name}")
        else:
            self._check_module(node, node.module)

    def _check_module(self, node: ast.AST, module: str) -> None:
        parts = module.split(".")
        if parts[0] == "submission_runner":
            self.report(node, IMPORTS, "imports submission_runner, the harness; a submission "
                        "gets everything it may use as arguments of its functions")
        elif parts[0] in PACKAGES and len(parts) > 1 and parts[1] not in ALLOWED_MODULES:
            allowed = ", ".join(f"{parts[0]}.{m}" for m in ALLOWED_MODULES)
            self.report(node, IMPORTS, f"imports {module}, which is not part of the submission "
                        f"API; a submission may import only {allowed}")

    # -- expressions -------------------------------------------------------------------------

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and self.aliases.get(node.value.id) in PACKAGES:
            self._check_module(node, f"{self.aliases[node.value.id]}.{node.attr}")
        if self.is_workload(node.value):
            self._check_workload_attribute(node)
        if node.attr in FRAME_ATTRIBUTES:
            self.report(node, CLOCK, f"reads .{node.attr}, reaching into the frames of the "
                        "runner, which hold its clock and timing state")
        self.generic_visit(node)

    def _check_workload_attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr in ("__class__", "__module__", "__dict__", "__qualname__", "__name__"):
            self.report(node, IDENTITY, f"reads workload.{attr}, which identifies the "
                        "workload; a submission may not select logic or hyperparameters "
                        "for a specific workload")
        elif attr in self.identity:
            self.report(node, IDENTITY, f"reads workload.{attr}, which names the workload or "
                        "its variant; a submission may not select logic or hyperparameters "
                        "for a specific workload")
        elif attr == "_build_input_queue":
            self.report(node, FIXED, "uses workload._build_input_queue, the one workload "
                        "function a submission may not call; take batches from input_queue")
        elif attr.startswith("_") and not attr.startswith("__"):
            self.report(node, FIXED, f"uses workload.{attr}, a private member of the fixed "
                        "workload; a submission may use its public API only")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.tables and isinstance(node.ctx, ast.Load) \
                and self.functions and not self.in_name_function:
            self.report(node, IDENTITY, f"reads {node.id}, a table keyed by workload name "
                        f"(line {self.tables[node.id]}), outside get_batch_size; a submission "
                        "may not look up settings for a specific workload")

    def visit_Dict(self, node: ast.Dict) -> None:
        if self.functions and not self.in_name_function and any(
                k is not None and _literal_names(k, self.names) for k in node.keys):
            self.report(node, IDENTITY, "builds a table keyed by workload name outside "
                        "get_batch_size; a submission may not look up settings for a specific "
                        "workload")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        sides = [node.left, *node.comparators]
        if not self.in_name_function:
            found = [n for s in sides for n in _literal_names(s, self.names)]
            if found:
                self.report(node, IDENTITY, f"compares with the workload name {found[0]!r}; "
                            "only get_batch_size may use the name; a submission may not select "
                            "logic or hyperparameters for a specific workload")
        equality = all(isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn)
                       for op in node.ops)
        for side in sides:
            if (equality and isinstance(side, ast.Attribute) and self.is_workload(side.value)
                    and side.attr in FINGERPRINTS and any(_is_number(s) for s in sides)):
                self.report(node, IDENTITY, f"compares workload.{side.attr} with a constant, "
                            "a fingerprint of one workload; a submission may not select logic "
                            "or hyperparameters for a specific workload")
        self.generic_visit(node)

    def visit_match_case(self, node: ast.match_case) -> None:
        values = [p.value for p in ast.walk(node.pattern) if isinstance(p, ast.MatchValue)]
        if not self.in_name_function and any(_literal_names(v, self.names) for v in values):
            self.report(node.pattern, IDENTITY, "matches on a workload name outside "
                        "get_batch_size; a submission may not select logic or hyperparameters "
                        "for a specific workload")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        dotted = _dotted(node.func, self.aliases)
        name = node.func.id if isinstance(node.func, ast.Name) else None
        first = node.args[0] if node.args else None
        if name in ("type", "repr", "str") and first is not None and self.is_workload(first) \
                and len(node.args) == 1:
            self.report(node, IDENTITY, f"calls {name}(workload), which identifies the "
                        "workload; a submission may not select logic or hyperparameters for a "
                        "specific workload")
        if name in ("isinstance", "issubclass") and len(node.args) == 2:
            classes = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            names = [c.id if isinstance(c, ast.Name) else getattr(c, "attr", "")
                     for c in classes]
            specific = [n for n in names if n != "Workload"]  # spec.Workload: any workload
            if (self.is_workload(first) and specific) or any(
                    n.endswith("Workload") for n in specific):
                self.report(node, IDENTITY, f"{name} tests the workload's class, which "
                            "identifies the workload; a submission may not select logic or "
                            "hyperparameters for a specific workload")
        if name in ("setattr", "delattr") and first is not None:
            self._check_store_on(first, node, f"{name}()")
        if name == "open" or dotted in ("io.open", "builtins.open", "codecs.open"):
            self._check_open(node, 1)
        if not (dotted and self._check_call(node, dotted)) and isinstance(node.func,
                                                                        ast.Attribute):
            self._check_method(node, node.func)
        self.generic_visit(node)

    def _check_open(self, node: ast.Call, mode_index: int, target: ast.AST | None = None) -> None:
        path = _outside_path(target if target is not None else (node.args[0] if node.args
                                                                 else None))
        if path is not None and _write_mode(node, mode_index):
            self.report(node, FILES, f"opens {path!r} for writing, outside the run's folder; a "
                        "submission may not write outside its own files")

    def _check_call(self, node: ast.Call, dotted: str) -> bool:
        """The checks of a call to a known function; False when ``dotted`` is none of them."""
        if dotted in DELETES:
            self.report(node, FILES, f"calls {dotted}, which deletes or moves files; a "
                        "submission may not change files outside its own")
        elif dotted in WRITES_AT:
            target = node.args[-1] if node.args else None
            path = _outside_path(target)
            if path is not None:
                self.report(node, FILES, f"calls {dotted} on {path!r}, outside the run's "
                            "folder; a submission may not write outside its own files")
        elif dotted in COMMANDS:
            self.report(node, FILES, f"calls {dotted}, running a program that can change any "
                        "file; a submission may act only through its functions")
        elif dotted in FRAMES:
            self.report(node, CLOCK, f"calls {dotted}, which reaches into the runner's frames "
                        "(its clock and timing state)")
        elif dotted.startswith("time.clock_set"):
            self.report(node, CLOCK, f"calls {dotted}, setting the clock the runner times "
                        "submissions with")
        elif dotted in ("os.putenv", "os.unsetenv"):
            self.report(node, ENVIRONMENT, f"calls {dotted}; submitters may not modify or add "
                        "environment variables")
        elif dotted in THREAD_STARTERS:
            self.report(node, THREADS, f"calls {dotted}: work left running in another thread "
                        "or process during the untimed evaluation breaks the rules",
                        severity=WARNING)
        else:
            return False
        return True

    def _check_method(self, node: ast.Call, func: ast.Attribute) -> None:
        receiver = _dotted(func.value, self.aliases)
        if receiver == "os.environ" and func.attr in ENVIRON_METHODS:
            self.report(node, ENVIRONMENT, f"calls os.environ.{func.attr}; submitters may not "
                        "modify or add environment variables")
        elif receiver == "sys.modules" and func.attr in ENVIRON_METHODS:
            self.report(node, CLOCK, f"calls sys.modules.{func.attr}, replacing modules the "
                        "runner uses (its clock among them)")
        elif isinstance(func.value, ast.Name) and func.value.id == "train_state" \
                and func.attr in TRAIN_STATE_WRITES:
            self.report(node, CLOCK, f"calls train_state.{func.attr}: train_state is the "
                        "runner's read-only view of its timing state")
        elif func.attr in PATH_WRITES or func.attr in PATH_DELETES or func.attr == "open":
            path = _outside_path(func.value)
            if func.attr == "open":
                if path is not None:
                    self._check_open(node, 0, func.value)
            elif func.attr in PATH_DELETES:
                self.report(node, FILES, f"calls .{func.attr}(), deleting a file or folder; a "
                            "submission may not change files outside its own")
            elif path is not None:
                self.report(node, FILES, f"calls .{func.attr}() on {path!r}, outside the run's "
                            "folder; a submission may not write outside its own files")

    def _check_store(self, target: ast.AST, node: ast.AST) -> None:
        """An assignment or deletion whose target is an attribute or item of something the
        rules protect."""
        if isinstance(target, ast.Tuple | ast.List):
            for t in target.elts:
                self._check_store(t, node)
        elif isinstance(target, ast.Attribute | ast.Subscript):
            dotted = _dotted(target, self.aliases)
            if dotted in CLOCK_FUNCTIONS:
                self.report(node, CLOCK, f"replaces {dotted}, which the runner's clock calls "
                            "to wait for the device")
            self._check_store_on(target.value, node, "assigns to")

    def _check_store_on(self, obj: ast.AST, node: ast.AST, verb: str) -> None:
        dotted = _dotted(obj, self.aliases)
        if dotted == "time" or (dotted or "").startswith("time."):
            self.report(node, CLOCK, f"{verb} an attribute of the time module, the clock the "
                        "runner times submissions with")
        elif dotted == "os.environ":
            self.report(node, ENVIRONMENT, f"{verb} os.environ; submitters may not modify or "
                        "add environment variables")
        elif dotted == "sys.modules":
            self.report(node, CLOCK, f"{verb} sys.modules, replacing modules the runner uses "
                        "(its clock among them)")
        elif self.is_workload(obj):
            self.report(node, FIXED, f"{verb} the workload: its functions and constants are "
                        "fixed, a submission may not modify them")
        elif isinstance(obj, ast.Name) and obj.id == "train_state":
            self.report(node, CLOCK, f"{verb} train_state, the runner's read-only view of its "
                        "timing state")


# --- the submission -------------------------------------------------------------------------


class _Declared:
    """A stand-in with a declared signature, so that the runner's call-compatibility check
    (`algoperf.submission`) judges a function that is never imported."""

    def __init__(self, signature: inspect.Signature) -> None:
        self.__signature__ = signature

    def __call__(self, *args, **kwargs):  # pragma: no cover - never called
        raise NotImplementedError


def _signature(node: ast.FunctionDef) -> inspect.Signature:
    """The parameters of a ``def`` as an inspect.Signature (defaults stand as None)."""
    a = node.args
    kind = inspect.Parameter
    params = []
    positional = [*a.posonlyargs, *a.args]
    defaults_from = len(positional) - len(a.defaults)
    for i, arg in enumerate(positional):
        params.append(kind(arg.arg, kind.POSITIONAL_ONLY if i < len(a.posonlyargs)
                           else kind.POSITIONAL_OR_KEYWORD,
                           default=None if i >= defaults_from else kind.empty))
    if a.vararg:
        params.append(kind(a.vararg.arg, kind.VAR_POSITIONAL))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        params.append(kind(arg.arg, kind.KEYWORD_ONLY,
                           default=kind.empty if default is None else None))
    if a.kwarg:
        params.append(kind(a.kwarg.arg, kind.VAR_KEYWORD))
    return inspect.Signature(params)


def _top_level(tree: ast.Module) -> dict[str, ast.AST]:
    """The names a module binds at its top level, each to the statement that binds it."""
    bound: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound[node.name] = node
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for a in node.names:
                bound[(a.asname or a.name).split(".")[0]] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        bound[n.id] = node
    return bound


def check_api(path: Path, tree: ast.Module, rules: str = "v0.6") -> list[Finding]:
    """The submission functions of an entry file: each required one defined, each signature
    callable as the runner calls it; get_eval_batch_size is refused (the rules fix the eval
    batch size); prepare_for_eval under v0.5 rules is a warning (v0.5 never called it)."""
    findings = []
    bound = _top_level(tree)
    missing = [n for n in submission.REQUIRED if n not in bound]
    if missing:
        findings.append(Finding(path, 1, API, f"does not define {', '.join(missing)}; a "
                                f"submission defines {', '.join(submission.REQUIRED)} (and "
                                "optionally prepare_for_eval)"))
    for name in (*submission.REQUIRED, "prepare_for_eval"):
        node = bound.get(name)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue  # imported or assigned: checked when the runner loads it
        try:
            submission._check_signature(path, name, _Declared(_signature(node)))
        except UserError as e:
            message = str(e).removeprefix(f"submission {path}: ")
            findings.append(Finding(path, node.lineno, API, message))
    if "get_eval_batch_size" in bound:
        findings.append(Finding(path, getattr(bound["get_eval_batch_size"], "lineno", 1),
                                EVAL_BATCH, "defines get_eval_batch_size; submitters may not "
                                "change the evaluation batch size (ask the organizers to "
                                "change a workload's)"))
    if rules == "v0.5" and "prepare_for_eval" in bound:
        findings.append(Finding(path, getattr(bound["prepare_for_eval"], "lineno", 1),
                                RULES_VERSION, "defines prepare_for_eval, which AlgoPerf v0.5's "
                                "runner never calls (added in v0.6); under --rules v0.5 its "
                                "results are not comparable with v0.5 runs", WARNING))
    return findings


def _parse(path: Path) -> ast.Module:
    try:
        return ast.parse(path.read_bytes(), filename=str(path))
    except SyntaxError as e:
        raise UserError(f"{path}:{e.lineno}: cannot check the submission, it has a syntax "
                        f"error: {e.msg}; fix it and rerun") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None


def entry_files(path: str | Path, framework: str | None = None) -> list[Path]:
    """The submission files ``path`` names: the file itself, or in a folder
    ``submission_<framework>.py`` (every framework's without ``framework``) or
    ``submission.py``."""
    from algoperf.workloads import registry

    p = Path(path).expanduser()
    if not p.is_dir():
        return [submission.resolve_path(p, framework or registry.FRAMEWORKS[0])]
    if framework is not None:
        return [submission.resolve_path(p, framework)]
    found = [p / f"submission_{fw}.py" for fw in registry.FRAMEWORKS
             if (p / f"submission_{fw}.py").is_file()]
    if not found and (p / "submission.py").is_file():
        found = [p / "submission.py"]
    if not found:
        raise UserError(f"submission folder {p} has no submission_<framework>.py or "
                        "submission.py; pass the submission's folder or .py file")
    return found


def _search_space_findings(entries: list[Path], ruleset: str,
                           search_space: Path | None) -> Iterator[Finding]:
    folder = entries[0].parent
    beside = folder / "tuning_search_space.json"
    if ruleset == "external" and search_space is None and not beside.is_file():
        yield Finding(folder, 0, SEARCH_SPACE, "an external-tuning submission has a "
                      "tuning_search_space.json beside its file (or pass "
                      "--tuning-search-space)", WARNING)
    if ruleset == "self" and (search_space is not None or beside.is_file()):
        yield Finding(search_space or beside, 0, SEARCH_SPACE, "a self-tuning submission may "
                      "not expose hyperparameters; the runner passes hyperparameters=None",
                      WARNING)


def _module_names(folder: Path, file: Path) -> tuple[str, ...]:
    """The dotted name a module of the submission's folder imports as from that folder."""
    parts = file.relative_to(folder).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported(file: Path, node: ast.Import | ast.ImportFrom) -> Iterator[tuple[str, ...]]:
    """The dotted names an import statement may load, each as a tuple of parts; relative
    imports as paths below the file's folder (a leading '/' part marks them)."""
    if isinstance(node, ast.Import):
        for a in node.names:
            yield tuple(a.name.split("."))
        return
    module = tuple(node.module.split(".")) if node.module else ()
    if node.level:
        base = file.parent
        for _ in range(node.level - 1):
            base = base.parent
        module = ("/", *base.parts, *module)
    yield module
    for a in node.names:
        yield (*module, a.name)


def _reachable(entries: list[Path]) -> dict[Path, ast.Module]:
    """The entry files and every module of the submission's folder they import, directly or
    through each other (as siblings, by repository path, or relatively), parsed. Files the run
    never imports (a vendored library's examples and tests) are not the submission's code."""
    folder = entries[0].parent.resolve()
    candidates = {f.resolve() for e in entries for f in submission.source_files(e)
                  if f.suffix == ".py"}
    names = {f: _module_names(folder, f) for f in candidates}
    trees: dict[Path, ast.Module] = {}
    queue = [e.resolve() for e in entries]
    while queue:
        file = queue.pop()
        if file in trees:
            continue
        trees[file] = tree = _parse(file)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for wanted in _imported(file, node):
                for f, name in names.items():
                    if not name or f in trees:
                        continue
                    if wanted[0] == "/":  # relative: a path below the importing package
                        rel = Path(*wanted[1:])
                        hit = f.with_suffix("") == rel or f == rel / "__init__.py"
                        hit = hit or rel.is_relative_to(f.parent) and f.name == "__init__.py"
                    else:  # absolute: from the folder, the repository root or a subfolder
                        k = min(len(name), len(wanted))
                        hit = name[-k:] == wanted[-k:] or f.name == "__init__.py" and any(
                            wanted[i:i + len(name)] == name for i in range(len(wanted)))
                    if hit:
                        queue.append(f)
    return {f: trees[f] for f in sorted(trees)}


def check_submission(path: str | Path, framework: str | None = None, *,
                     ruleset: str = "external", rules: str = "v0.6",
                     search_space: Path | None = None) -> list[Finding]:
    """Every finding for the submission at ``path`` (a .py file or its folder): the API of each
    entry file, and the rules over each entry file and the submission's own modules it
    imports (`_reachable`)."""
    entries = [e.resolve() for e in entry_files(path, framework)]
    trees = _reachable(entries)
    findings: list[Finding] = list(_search_space_findings(entries, ruleset, search_space))
    for file, tree in trees.items():
        if file in entries:
            findings += check_api(file, tree, rules)
        visitor = _Visitor(file, tree)
        visitor.visit(tree)
        findings += visitor.findings
    return sorted(findings, key=lambda f: (str(f.path), f.line, f.rule))


def violations(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == VIOLATION]


def enforce(path: str | Path, framework: str | None, *, ruleset: str, rules: str,
            search_space: Path | None = None) -> list[Finding]:
    """For docker run and sweep plan: raises UserError (before any job starts) naming the
    first violation and how many there are; returns the warnings (which those commands
    leave to `algoperf check`, so that their bad-input errors stay one line)."""
    findings = check_submission(path, framework, ruleset=ruleset, rules=rules,
                                search_space=search_space)
    bad = violations(findings)
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise UserError(f"the submission breaks AlgoPerf's rules: {bad[0]}{more}; see "
                        f"`algoperf check {path}` for all, or pass --no-check to run anyway")
    return findings
