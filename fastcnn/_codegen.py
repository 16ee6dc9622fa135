"""Writes the compiled loops (``kernels/_loops.py``) from the registry.

Each loop (per-sample training, its two-thread twin, mini-batch training, batched prediction) is
one dispatch over the layer records: a branch per registered kind, calling that kind's hooks
(:data:`fastcnn.registry.HOOKS`), each branch behind compile-time flags. A flag is ``None`` when
the network has no layer of that kind (in that position: first, or after the first), and Numba
removes an ``if flag is not None`` branch whose flag is typed None before it compiles anything in
it, so a network's loops compile only the kinds it has. An op with no branch cannot occur: the
records' op codes are indices into the module's own ``KINDS``, and ``fastcnn._compiled`` refuses
a kind the module lacks.

Why generated source, not closures built at run time: Numba caches only functions whose source is
a file, and a cold start compiles the loops in seconds. So the loops of the built-in kinds are
written into ``kernels/_loops.py``, which is checked in and cached like every kernel
(``python -m fastcnn._codegen`` rewrites it; ``tests/test_registry.py`` fails when it is stale).
A kind registered from outside the package (a user's, a test's) gets loops generated into a
temporary file when a network first needs it; those compile in every process (no cache: the
package's cache stamp does not cover code outside ``kernels/``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from . import registry
from .registry import Kind, Loss

LOOPS_FILE = Path(__file__).resolve().parent.parent / "kernels" / "_loops.py"
_PACKAGE = "fastcnn.kernels."

# The loops' common arguments, as written in every signature.
_SAMPLE = "L, params, gparams, acts, grads, scratch, rate, partial"
_BATCH = "L, params, gparams, acts, grads, scratch, capacity, n, rate"


def _function(fn: Any) -> tuple[str, str]:
    """(module, name) of a hook or kernel (a Numba dispatcher, or a plain function when
    NUMBA_DISABLE_JIT is set)."""
    py = getattr(fn, "py_func", fn)
    return py.__module__, py.__name__


def is_builtin(kind: Kind | Loss) -> bool:
    """Whether every function of ``kind`` lives in ``fastcnn.kernels`` (then its loops are in the
    checked-in module)."""
    return all(m.startswith(_PACKAGE) for m, _ in map(_function, _functions(kind)))


def _functions(entry: Kind | Loss) -> list[Any]:
    if isinstance(entry, Loss):
        return [entry.kernel, *entry.fused.values()]
    if entry.activation is not None:
        return list(entry.activation)
    return list(entry.hooks.values())


class _Writer:
    def __init__(
        self, kinds: Sequence[Kind], losses: Sequence[Loss], relative: bool, fused: bool = True
    ) -> None:
        self.kinds, self.losses, self.relative = list(kinds), list(losses), relative
        self.fused = fused
        self.imports: dict[str, list[str]] = {}
        self.lines: list[str] = []

    def name(self, fn: Any, alias: str) -> str:
        module, name = _function(fn)
        if self.relative:
            module = "." + module[len(_PACKAGE) :]
        self.imports.setdefault(module, []).append(name if name == alias else f"{name} as {alias}")
        return alias

    def emit(self, text: str = "") -> None:
        self.lines.append(text)

    # flags ------------------------------------------------------------------------------------

    @staticmethod
    def flags(kind: Kind) -> list[str]:
        """Compile-time flags of a kind: present at all, as a first layer, after the first."""
        names = [kind.name]
        if kind.has_first:
            names.append(f"{kind.name}_first")
        return [*names, f"{kind.name}_inner"]

    def all_flags(self) -> str:
        names = [f for k in self.kinds for f in self.flags(k)]
        names += [f"loss_{name}" for name in self.loss_names()]
        return ", ".join(names)

    def loss_names(self) -> list[str]:
        """Every loss entry of the loops (a loss, then its fused variants), in code order."""
        return [name for loss in self.losses for name in registry.loss_entries(loss)]

    def kind_flags(self) -> str:
        return ", ".join(f for k in self.kinds for f in self.flags(k))

    # hooks --------------------------------------------------------------------------------------

    def hooks(self, kind: Kind) -> dict[str, str]:
        """``{role: callable name}`` for the kind's forward and backward hooks on both paths."""
        if kind.activation is not None:
            return self.activation_hooks(kind)
        roles = {}
        for role in ("forward", "backward", "backward_first"):
            for path in ("", "_batch"):
                if role == "forward":
                    fn = kind.hooks.get("forward" + path)
                    tag = "forward" + path
                else:
                    sgd = kind.hooks.get(f"{role}_sgd{path}") if self.fused else None
                    fn = sgd or kind.hooks.get(role + path)
                    tag = f"{role}{'_sgd' if sgd else ''}{path}"
                    plain = kind.hooks.get(role + path)
                    if sgd is not None and plain is not None:
                        # An optimizer needs the gradient: the loops call this hook then.
                        roles["plain " + role + path] = self.name(
                            plain, f"{kind.name}__{role}{path}"
                        )
                if fn is not None:
                    roles[role + path] = self.name(fn, f"{kind.name}__{tag}")
        return roles

    def activation_hooks(self, kind: Kind) -> dict[str, str]:
        if kind.activation is None:
            raise TypeError(f"kind {kind.name!r} is not an activation")
        f = self.name(kind.activation[0], f"{kind.name}__kernel")
        b = self.name(kind.activation[1], f"{kind.name}__kernel_backward")
        k = kind.name
        x, y = "acts[L.x : L.x + L.in_size]", "acts[L.y : L.y + L.out_size]"
        gx, gy = "grads[L.x : L.x + L.in_size]", "grads[L.y : L.y + L.out_size]"
        bx = "acts[L.x * capacity : L.x * capacity + n * L.in_size]"
        by = "acts[L.y * capacity : L.y * capacity + n * L.out_size]"
        bgx = "grads[L.x * capacity : L.x * capacity + n * L.in_size]"
        bgy = "grads[L.y * capacity : L.y * capacity + n * L.out_size]"
        bodies = {
            "forward": ("L, params, acts, scratch, partial", f"{f}({x}, {y})"),
            "backward": (_SAMPLE, f"{b}({x}, {y}, {gy}, {gx})"),
            "forward_batch": ("L, params, acts, scratch, capacity, n", f"{f}({bx}, {by})"),
            "backward_batch": (_BATCH, f"{b}({bx}, {by}, {bgy}, {bgx})"),
        }
        roles = {}
        for role, (args, body) in bodies.items():
            name = f"_{k}_{role}"
            self.emit("@jit(inline=True)")
            self.emit(f"def {name}({args}):")
            self.emit(f"    {body}")
            self.emit()
            self.emit()
            roles[role] = name
        return roles

    # the loops ----------------------------------------------------------------------------------

    def dispatch(self, hooks: dict[str, dict[str, str]], role: str, args: str, backward: bool):
        """One loop body over the records: ``if op == i`` for every kind, as lines without
        indentation."""
        body = []
        for op, kind in enumerate(self.kinds):
            k = kind.name
            body.append(f"{'if' if op == 0 else 'elif'} op == {op}:  # {k}")
            mine = hooks[k]
            if not backward:
                body += [f"    if {k} is not None:", f"        {mine[role]}({args})"]
                continue
            role_first = role.replace("backward", "backward_first")
            first = mine.get(role_first)
            if first is not None and kind.has_first:
                body += [
                    "    if l == 0:",
                    f"        if {k}_first is not None:",
                    *self.call(mine, role_first, args, 12),
                    f"    elif {k}_inner is not None:",
                    *self.call(mine, role, args, 8),
                ]
            else:  # a first layer of this kind has nothing to do
                body += [
                    f"    if l > 0 and {k}_inner is not None:",
                    *self.call(mine, role, args, 8),
                ]
        return body

    @staticmethod
    def call(mine: dict[str, str], role: str, args: str, indent: int) -> list[str]:
        """The call of a backward hook; where it is a fused SGD fast path, only when there is no
        optimizer (``opt`` None, a branch Numba removes), else the gradient-only hook."""
        pad = " " * indent
        plain = mine.get("plain " + role)
        if plain is None:
            return [f"{pad}{mine[role]}({args})"]
        return [
            f"{pad}if opt is None:",
            f"{pad}    {mine[role]}({args})",
            f"{pad}else:",
            f"{pad}    {plain}({args})",
        ]

    def loss(self, losses: dict[str, str], args: str, fused_args: str) -> list[str]:
        """``value = <the loss kernel>(args)`` for the loss entry whose code is ``loss``; a fused
        entry's kernel takes ``fused_args`` (the last layer's input, the target, its output and
        its input's gradient) and sets ``skip``: the backward pass starts at the layer before."""
        lines = ["value = np.nan", "skip = 0"]
        for code, name in enumerate(self.loss_names()):
            fused = "__" in name
            lines += [
                f"if loss == {code} and loss_{name} is not None:",
                f"    value = {losses[name]}({fused_args if fused else args})",
            ]
            if fused:
                lines.append("    skip = 1")
        return lines

    def source(self, runtime: bool) -> str:
        hooks = {kind.name: self.hooks(kind) for kind in self.kinds}
        losses = {loss.name: self.name(loss.kernel, f"loss__{loss.name}") for loss in self.losses}
        for loss in self.losses:
            for kind, kernel in loss.fused.items():
                name = f"{loss.name}__{kind}"
                losses[name] = self.name(kernel, f"loss__{name}")
        activations = self.lines

        def block(lines: list[str], indent: int) -> str:
            return "\n".join(" " * indent + line for line in lines)

        def forward(partial: str) -> str:
            args = f"L, params, acts, scratch, {partial}"
            return block(self.dispatch(hooks, "forward", args, False), 12)

        def backward(partial: str) -> str:
            args = f"L, params, gparams, acts, grads, scratch, rate, {partial}"
            return block(self.dispatch(hooks, "backward", args, True), 12)

        batch_forward = block(
            self.dispatch(hooks, "forward_batch", "L, params, acts, scratch, capacity, n", False),
            12,
        )
        batch_backward = block(self.dispatch(hooks, "backward_batch", _BATCH, True), 12)
        sample_loss = block(self.loss(losses, "out, ys[k], g", "lx, ys[k], out, lg"), 8)
        # The bodies are written out in each entry point, not called as shared inline functions
        # with the flags as arguments: CPython compiles a call of more than 30 arguments into a
        # *args call, which Numba cannot inline.
        text = _TEMPLATE.format(
            kf=self.kind_flags(),
            af=self.all_flags(),
            cache="@jit(cache=False)" if runtime else "@jit",
            sample=_SAMPLE_BODY.format(
                forward=forward("None"), backward=backward("None"), loss=sample_loss
            ).strip("\n"),
            sample_threads=_SAMPLE_BODY.format(
                forward=forward("partial"), backward=backward("partial"), loss=sample_loss
            ).strip("\n"),
            batch_forward=batch_forward,
            batch_backward=batch_backward,
            batch_loss=block(
                self.loss(
                    losses, "out[b], ys[start + b], g[b]", "lx[b], ys[start + b], out[b], lg[b]"
                ),
                12,
            ),
        )
        head = [_HEADER.strip("\n"), "", "import numpy as np", ""]
        jit_from = "._jit" if self.relative else "fastcnn.kernels._jit"
        buffers = ".buffers" if self.relative else "fastcnn.kernels.buffers"
        sgd = ".sgd" if self.relative else "fastcnn.kernels.sgd"
        self.imports.setdefault(jit_from, []).insert(0, "jit")
        self.imports.setdefault(buffers, []).extend(["copy", "region"])
        self.imports.setdefault(sgd, []).append("sgd_step")
        optim = ".optim" if self.relative else "fastcnn.kernels.optim"
        self.imports.setdefault(optim, []).append("optimizer_step")
        for module in sorted(self.imports, key=lambda m: (not m.startswith("."), m)):
            names = ", ".join(sorted(set(self.imports[module])))
            head.append(f"from {module} import {names}")
        head += [
            "",
            f"KINDS = {tuple(k.name for k in self.kinds)!r}",
            f"LOSSES = {tuple(self.loss_names())!r}",
            "",
            "",
        ]
        return "\n".join(head + activations) + text.strip("\n") + "\n"


_HEADER = '''
"""The compiled loops, written by ``fastcnn._codegen`` from the registry: do not edit by hand;
``python -m fastcnn._codegen`` rewrites this file, and ``tests/test_registry.py`` fails when it is
stale.

The network arrives as a program (``fastcnn._compiled.Program``): ``spec``, one record per layer
(``L.op`` indexes :data:`KINDS`; sizes, offsets into the flat buffers, the kind's own ``dims``),
and flat buffers: ``params`` (every parameter), ``gparams`` (their gradients, laid out alike),
``acts`` and ``grads`` (activations and their gradients; layer ``l``'s input at ``L.x``, its output
at ``L.y``), ``scratch`` (each record's from ``L.scratch``). Every argument is an array, a number
or a flag (True, or None for a kind the network lacks, which removes its branches when Numba
compiles), so an entry point compiles once per dtype and set of kinds, never per network length.

``partial`` is None on one thread; with threads it is scratch (blocks, widest dense input) for the
dense kinds' parallel kernels. ``train_sgd_threads`` compiles in every process (parallel code is
never cached; see ``_jit.jit``). The loops are inlined into the entry points: compiled as
functions of their own, each would make LLVM optimise every kernel below it once more.
"""
'''

# The per-sample loop's body, written once and formatted for both of its entry points.
_SAMPLE_BODY = """
    last = spec[spec.size - 1]
    out = acts[last.y : last.y + last.out_size]
    g = grads[last.y : last.y + last.out_size]
    lx = acts[last.x : last.x + last.in_size]
    lg = grads[last.x : last.x + last.in_size]
    first = spec[0]
    x = acts[first.x : first.x + first.in_size]
    for k in range(xs.shape[0]):
        copy(xs[k], x)
        for l in range(spec.size):
            L = spec[l]
            op = L.op
{forward}
{loss}
        if not np.isfinite(value):
            return k
        losses[k] = value
        for l in range(spec.size - 1 - skip, -1, -1):
            L = spec[l]
            op = L.op
{backward}
        if opt is None:
            _step(spec, params, gparams, 1, rate)
        else:
            _opt_step(spec, params, gparams, 1, opt, k)
    return xs.shape[0]
"""

_TEMPLATE = '''
@jit(inline=True)
def _step(spec, params, gparams, count, rate):
    """The SGD step of every parameter whose hook left it to the loop (not fused)."""
    for l in range(spec.size):
        L = spec[l]
        if L.step_stop > L.step_start:
            start, stop = L.step_start, L.step_stop
            sgd_step(params[start:stop], gparams[start:stop], count, rate)


{cache}
def _opt_step(spec, params, gparams, count, opt, index):
    """Step ``index`` of the chunk by an optimizer, over every parameter (no hook fused a step):
    ``opt = (code, hyper, lrs, taken, s1, s2)``, the optimizer's code and hyper-parameters
    (``kernels.optim.optimizer_step``), each step's learning rate, the steps taken before the
    chunk, and its state buffers laid out as ``params`` (empty when unused)."""
    code, hyper, lrs, taken, s1, s2 = opt
    lr = lrs[index]
    for l in range(spec.size):
        L = spec[l]
        if L.step_stop > L.step_start:
            a, b = L.step_start, L.step_stop
            optimizer_step(
                params[a:b], gparams[a:b], count, s1[a:b], s2[a:b], code, hyper, lr, taken + index
            )


{cache}
def train_sgd(
    spec, params, gparams, acts, grads, scratch, xs, ys, rate, loss, losses, opt, {af}
):
    """The seed's ``Network.train`` inner loop (per-sample SGD) over samples ``xs``/``ys``.

    xs (N, input size), ys (N, output size); ``loss`` indexes :data:`LOSSES`; losses (N,) receives
    each sample's loss. ``opt`` None: the seed's SGD by ``rate``; else an optimizer (see
    :func:`_opt_step`; ``rate`` unused) steps after every sample. Returns N, or the index of the
    first sample whose loss is not finite, before that sample's update.
    """
{sample}


@jit(cache=False)
def train_sgd_threads(
    spec, params, gparams, acts, grads, scratch, xs, ys, rate, loss, losses, opt, partial, {af}
):
    """:func:`train_sgd` with the large dense layers split into ``len(partial)`` blocks run on
    ``numba.get_num_threads()`` threads."""
{sample_threads}


{cache}
def train_sgd_batch(
    spec, params, gparams, acts, grads, scratch, xs, ys, capacity, rate, loss, losses, opt, {af}
):
    """Mini-batch SGD: each consecutive batch of ``capacity`` samples of ``xs``/``ys`` (the last may
    be shorter) moves ``params`` once by ``rate`` times the mean of its per-sample gradients, taken
    at the parameters before the batch (``opt``: an optimizer's step instead, as in
    :func:`train_sgd`).

    The buffers hold ``capacity`` samples (see ``kernels.buffers``); losses (N,) float64 receives
    each sample's loss. Returns N, or the first sample of the first batch holding a non-finite
    loss, before that batch's update.
    """
    last = spec[spec.size - 1]
    first = spec[0]
    total = xs.shape[0]
    for start in range(0, total, capacity):
        n = min(capacity, total - start)
        x = region(acts, first.x, first.in_size, capacity, n)
        for b in range(n):
            copy(xs[start + b], x[b])
        for l in range(spec.size):
            L = spec[l]
            op = L.op
{batch_forward}
        out = region(acts, last.y, last.out_size, capacity, n)
        g = region(grads, last.y, last.out_size, capacity, n)
        lx = region(acts, last.x, last.in_size, capacity, n)
        lg = region(grads, last.x, last.in_size, capacity, n)
        finite = True
        for b in range(n):
{batch_loss}
            losses[start + b] = value
            finite = finite and np.isfinite(value)
        if not finite:
            return start
        for l in range(spec.size - 1 - skip, -1, -1):
            L = spec[l]
            op = L.op
{batch_backward}
        if opt is None:
            _step(spec, params, gparams, n, rate)
        else:
            _opt_step(spec, params, gparams, n, opt, start // capacity)
    return total


{cache}
def predict_batch(spec, params, acts, scratch, xs, capacity, out, {kf}):
    """``out[k] = network(xs[k])`` for every sample, ``capacity`` samples per forward pass (one
    GEMM per dense layer); the buffers as for :func:`train_sgd_batch`."""
    last = spec[spec.size - 1]
    first = spec[0]
    total = xs.shape[0]
    for start in range(0, total, capacity):
        n = min(capacity, total - start)
        x = region(acts, first.x, first.in_size, capacity, n)
        for b in range(n):
            copy(xs[start + b], x[b])
        for l in range(spec.size):
            L = spec[l]
            op = L.op
{batch_forward}
        y = region(acts, last.y, last.out_size, capacity, n)
        for b in range(n):
            copy(y[b], out[start + b])
'''


def source(
    kinds: Iterable[Kind], losses: Iterable[Loss], runtime: bool = False, fused: bool = True
) -> str:
    """The loops module for ``kinds`` and ``losses``, as Python source. ``fused=False`` calls the
    gradient-only hooks even where a kind has a fused SGD fast path (every kind then leaves its
    step to the loop)."""
    return _Writer(list(kinds), list(losses), relative=not runtime, fused=fused).source(runtime)


def builtin_source() -> str:
    """What ``kernels/_loops.py`` must hold: the loops of every built-in kind and loss."""
    _load_registry()
    kinds = [k for k in registry.KINDS.values() if is_builtin(k)]
    losses = [loss for loss in registry.LOSSES.values() if is_builtin(loss)]
    return source(kinds, losses)


def _load_registry() -> None:
    """Import every built-in layer kind and loss, so that the registry is complete."""
    from . import layers, losses  # noqa: F401


_RUNTIME: dict[str, ModuleType] = {}


def loops(kinds: Iterable[str], losses: Iterable[str], fused: bool = True) -> ModuleType:
    """A loops module with every kind and loss named: the checked-in one when it has them, else
    one generated for the whole registry into a temporary file (imported once per process).
    ``fused=False``: loops that leave every step to the loop (generated, for measurements)."""
    from .kernels import _loops

    kinds, losses = set(kinds), set(losses)
    if fused and kinds <= set(_loops.KINDS) and losses <= set(_loops.LOSSES):
        return _loops
    kinds_ = registry.KINDS.values()
    text = source(kinds_, registry.LOSSES.values(), runtime=True, fused=fused)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    module = _RUNTIME.get(digest)
    if module is None:
        path = Path(tempfile.mkdtemp(prefix="fastcnn-loops-")) / f"loops_{digest}.py"
        path.write_text(text)
        name = f"fastcnn._generated_loops_{digest}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import the generated loops {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _RUNTIME[digest] = module
    return module


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastcnn._codegen [--check]``: rewrite ``kernels/_loops.py`` (or only say
    whether it is current)."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = builtin_source()
    current = LOOPS_FILE.read_text() if LOOPS_FILE.exists() else ""
    if "--check" in args:
        if current != text:
            print(f"{LOOPS_FILE} is stale: run python -m fastcnn._codegen", file=sys.stderr)
            return 1
        return 0
    if current != text:
        LOOPS_FILE.write_text(text)
        print(f"wrote {LOOPS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
