"""The source rules of STYLE.md that a reviewer could miss, checked on the source text (stumpy's
test.sh `check_pkg_imports`, `check_fastmath`)."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = sorted((ROOT / "kernels").glob("*.py"))
PACKAGE = sorted((ROOT / "fastcnn").rglob("*.py"))


def parse(path):
    return ast.parse(path.read_text(), filename=str(path))


def rel(path):
    return path.relative_to(ROOT).as_posix()


def test_sources_found():
    # Catches the checks below passing vacuously because the layout moved.
    names = {p.name for p in KERNELS}
    assert {"_jit.py", "conv.py", "dense.py", "activation.py"} <= names
    assert {"__init__.py", "registry.py", "network.py", "_codegen.py"} <= {p.name for p in PACKAGE}


@pytest.mark.parametrize("path", KERNELS, ids=rel)
def test_kernels_do_not_import_fastcnn(path):
    # Catches kernels/ importing fastcnn (imports go one way; a cycle in the making).
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.split(".")[0] == "fastcnn"]
            assert not bad, f"{rel(path)}:{node.lineno} imports {bad}"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            assert node.level <= 1, f"{rel(path)}:{node.lineno} imports from outside kernels/"
            assert node.level == 1 or module.split(".")[0] != "fastcnn", (
                f"{rel(path)}:{node.lineno} imports from {module}"
            )
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            raise AssertionError(f"{rel(path)}:{node.lineno} imports dynamically")


def _imported_modules(path):
    """The absolute names of the modules ``path`` (a file of fastcnn/) imports, as written."""
    package = ["fastcnn", *path.relative_to(ROOT / "fastcnn").parent.parts]
    names = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            names.append(module)
            names += [f"{module}.{a.name}" for a in node.names]  # `from . import kernels`
    return names


def test_reference_path_never_imports_kernels():
    # Catches the oracle calling a kernel (fastcnn/reference.py, or any fastcnn module it imports):
    # the scipy backend and the tests' reference side would then share the kernel's bug.
    seen, todo = set(), [ROOT / "fastcnn" / "reference.py"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_modules(path):
            assert not (name + ".").startswith("fastcnn.kernels."), (
                f"{rel(path)} imports {name}, reached from fastcnn/reference.py"
            )
            if name.startswith("fastcnn."):
                module = ROOT / Path(*name.split(".")).with_suffix(".py")
                todo += [module] if module.is_file() else []
    assert {p.name for p in seen} >= {"reference.py", "functions.py"}, seen


def _is_jit(decorator):
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Name) and target.id == "jit"


def _is_overload(decorator):
    return (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Name)
        and decorator.func.id == "overload"
    )


@pytest.mark.parametrize(
    "path", [p for p in KERNELS if p.name not in ("_jit.py", "__init__.py")], ids=rel
)
def test_every_kernel_uses_package_jit(path):
    # Catches a kernel built by bare numba.njit (no stamp, no read-only fallback), or not at all.
    tree = parse(path)
    imports_jit = any(
        isinstance(n, ast.ImportFrom)
        and n.level == 1
        and n.module == "_jit"
        and any(a.name == "jit" and a.asname is None for a in n.names)
        for n in tree.body
    )
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    # The exceptions: a numba.extending.overload hook and the Python function it overloads
    # (`@overload(exp)` teaches Numba what `exp` means in kernels; neither is a kernel itself),
    # and an `@intrinsic` (LLVM code generated while Numba compiles its caller).
    hooks = [
        f for f in functions if len(f.decorator_list) == 1 and _is_overload(f.decorator_list[0])
    ]
    overloaded = {a.id for f in hooks for a in f.decorator_list[0].args if isinstance(a, ast.Name)}
    intrinsics = [
        f for f in functions if [getattr(d, "id", None) for d in f.decorator_list] == ["intrinsic"]
    ]
    functions = [f for f in functions if f not in hooks + intrinsics and f.name not in overloaded]
    assert functions or intrinsics, f"{rel(path)} defines no kernel"
    assert imports_jit or not functions, f"{rel(path)} does not import `jit` from ._jit"
    for function in functions:
        decorators = function.decorator_list
        assert len(decorators) == 1 and _is_jit(decorators[0]), (
            f"{rel(path)}:{function.lineno} {function.name} is not decorated with @jit (only)"
        )
    rebinds = [
        n
        for n in ast.walk(tree)
        if isinstance(n, (ast.Assign, ast.FunctionDef))
        and any(
            getattr(t, "id", None) == "jit"
            for t in getattr(n, "targets", [ast.Name(id=getattr(n, "name", ""))])
        )
    ]
    assert not rebinds, f"{rel(path)} rebinds the name `jit`"


def test_no_fastmath_outside_jit():
    # Catches a hardcoded fastmath= in a kernel; the one sanctioned flag lives in kernels/_jit.py.
    pattern = re.compile(r"fastmath\s*=")
    offenders = [
        f"{rel(p)}:{n}"
        for p in KERNELS
        if p.name != "_jit.py"
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, f"fastmath= outside kernels/_jit.py: {offenders}"


def test_jit_fastmath_flags_keep_nan():
    # Catches the sanctioned flag set growing into fastmath=True or gaining nnan/ninf.
    from fastcnn.kernels import _jit

    for flags in (_jit.REASSOCIATE, _jit.CONTRACT):
        assert isinstance(flags, (set, frozenset))
        assert not flags & {"nnan", "ninf", "fast", "afn"}, flags
    assert not re.search(r"fastmath\s*=\s*True", (ROOT / "kernels" / "_jit.py").read_text())


@pytest.mark.parametrize("path", KERNELS + PACKAGE, ids=rel)
def test_no_assert_in_library(path):
    # Catches `assert` used for validation in library code: it vanishes under `python -O`.
    asserts = [n.lineno for n in ast.walk(parse(path)) if isinstance(n, ast.Assert)]
    assert not asserts, f"{rel(path)} has assert statements on lines {asserts}"
