"""Memoroids (arXiv 2402.09900): recurrent models whose update is a monoid, so a sequence is one scan.

A monoid is an identity and an associative operator on elements (tuples of tensors shaped
``(B, T, ...)`` or, for a carried state, ``(B, ...)``). ``Resettable`` wraps any monoid with a start
flag per step, ``(h, s) . (h', s') = ((s' ? e : h) . h', s or s')``, so that one scan over a tape of
concatenated episodes restarts exactly at every episode start, with no padding.

Two scans give the same prefixes: ``parallel_scan`` (odd-even recursion: log depth, linear work)
and ``sequential_scan`` (one step after another: the monoid's linear recurrences with a fused
step and backward, else a Python loop over ``combine``). A state carried in from an earlier chunk enters as the
left operand of every prefix, so chunked and one-shot scans agree, and stepping one element at a
time (``act``) runs the same code as training.
"""
from __future__ import annotations

import torch
from torch import nn

Element = tuple[torch.Tensor, ...]

# Which scan is faster, per device type. On CPUs the fused sequential recurrence beats the parallel
# scan (fewer, larger kernels; log depth buys nothing on a few cores): measured by
# ``python bench/perf/memoroid_vs_rnn.py`` (docs/performance.md). GPUs: log depth (not measured).
FASTER_SCAN = {"cpu": "sequential", "cuda": "parallel"}
SCANS = ("auto", "parallel", "sequential")


class Monoid:
    """An identity and an associative ``combine``; both act elementwise over leading dimensions."""

    def identity(self, like: Element) -> Element:
        """The neutral element, shaped like ``like``."""
        raise NotImplementedError

    def combine(self, a: Element, b: Element) -> Element:
        """``a . b`` where ``a`` comes earlier in time than ``b``."""
        raise NotImplementedError

    def recurrence(self, xs: Element, starts: torch.Tensor, initial: Element) -> Element | None:
        """Optional fast sequential path: the prefixes of ``xs`` (B, T, ...) restarting where
        ``starts`` (B, T) is True, as first-order linear recurrences (``linear_recurrence``).
        None: ``sequential_scan`` falls back to a Python loop over ``combine``."""
        return None


def linear_recurrence(coef: torch.Tensor, inputs: torch.Tensor, initial: torch.Tensor,
                      starts: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = coef_t * h_{t-1} + inputs_t along dim 1 from h_0 = ``initial`` (B, ...), real or complex;
    where ``starts`` (B, T) is True, h_{t-1} counts as 0 (a restart).

    One fused multiply-add per step, and a backward that is the same recurrence run in reverse,
    instead of an autograd graph of T small nodes: the fast sequential scan. A ``coef`` that is
    one value over time (dim 1 of size 1) and restarts passed as ``starts`` are never expanded
    to (B, T, ...): only the steps that hold a start pay for it.
    """
    shape = torch.broadcast_shapes(coef.shape, inputs.shape, initial.unsqueeze(1).shape)
    return _LinearRecurrence.apply(coef, inputs.expand(shape), initial.expand(shape[:1] + shape[2:]), starts)


def _recur(coef: torch.Tensor, inputs: torch.Tensor, initial: torch.Tensor, keep: dict,
           reverse: bool = False) -> torch.Tensor:
    """The loop of ``linear_recurrence`` without autograd; ``keep`` maps a step to the factor
    (0 at a restart, else 1) on h_{t-1}; ``reverse`` runs from the last step back.

    The prefixes are stored time-major (returned as a (B, T, ...) view): the inputs are copied in
    with one vectorised pass and each step is an in-place multiply-add on a contiguous slice, ~4x
    faster per step on CPU than writing strided (B, ...) slices.
    """
    out = torch.empty(inputs.transpose(0, 1).shape, dtype=torch.result_type(coef, inputs), device=inputs.device)
    out_t = out.copy_(inputs.transpose(0, 1)).unbind(0)
    coef_t = coef.unbind(1) if coef.shape[1] > 1 else coef.expand(-1, len(out_t), *coef.shape[2:]).unbind(1)
    prev = initial
    for t in (reversed(range(len(out_t))) if reverse else range(len(out_t))):
        if t in keep:
            prev = prev * keep[t]
        prev = out_t[t].addcmul_(coef_t[t], prev)
    return out.transpose(0, 1)


class _LinearRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, coef, inputs, initial, starts):
        ctx.set_materialize_grads(False)
        keep = None
        if starts is not None and bool(starts.any()):
            keep = (~starts).to(inputs.real.dtype).reshape(starts.shape + (1,) * (inputs.ndim - 2))
        ctx.keep = keep
        out = _recur(coef, inputs, initial, _keep_steps(keep))
        ctx.save_for_backward(coef, initial, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        if grad is None:  # the prefixes were not used (e.g. only the final state is carried on)
            return None, None, None, None
        coef, initial, out = ctx.saved_tensors
        keep = ctx.keep
        # dL/dh_t = g_t + conj(coef_{t+1} keep_{t+1}) dL/dh_{t+1}: the same recurrence, backwards in
        # time (conj resolved once, not by a copy at every step).
        next_coef = coef if coef.shape[1] == 1 else torch.cat([coef[:, 1:], torch.zeros_like(coef[:, :1])], dim=1)
        next_coef = next_coef.conj().resolve_conj()
        next_keep = None if keep is None else keep[:, 1:]
        grad_h = _recur(next_coef, grad, torch.zeros_like(out[:, 0]), _keep_steps(next_keep), reverse=True)
        grad_coef = None
        if ctx.needs_input_grad[0] and coef.shape[1] == 1:
            grad_coef = _coef_grad_sum(grad_h, out, initial, keep, coef)
        elif ctx.needs_input_grad[0]:
            grad_coef = torch.empty_like(grad_h)  # grad_h_t * conj(keep_t h_{t-1}), without copying h
            torch.mul(grad_h[:, 1:], out[:, :-1].conj(), out=grad_coef[:, 1:])
            torch.mul(grad_h[:, 0], initial.conj(), out=grad_coef[:, 0])
            if keep is not None:
                grad_coef *= keep
            grad_coef = _sum_to(grad_coef, coef)
        grad_initial = None
        if ctx.needs_input_grad[2]:
            grad_initial = grad_h[:, 0] * next_coef[:, 0] if coef.shape[1] == 1 else grad_h[:, 0] * coef[:, 0].conj()
            grad_initial = _sum_to(grad_initial if keep is None else grad_initial * keep[:, 0], initial)
        return grad_coef, grad_h, grad_initial, None


def _coef_grad_sum(grad_h, out, initial, keep, coef, chunk: int = 128) -> torch.Tensor:
    """The gradient of a coefficient that is one value over time: the sum over t of
    grad_h_t * conj(keep_t h_{t-1}), in chunks of steps, so no (B, T, ...) product is allocated and
    each chunk stays in cache (at T = 4096 the one-shot product cost ~3x more here)."""
    first = grad_h[:, 0] * initial.conj()
    total = _sum_to((first if keep is None else first * keep[:, 0]).unsqueeze(1), coef)
    for start in range(1, grad_h.shape[1], chunk):
        stop = min(start + chunk, grad_h.shape[1])
        part = grad_h[:, start:stop] * out[:, start - 1:stop - 1].conj()
        total = total + _sum_to(part if keep is None else part * keep[:, start:stop], coef)
    return total


def _keep_steps(keep: torch.Tensor | None) -> dict:
    """{step: keep[:, step]} for the steps where some sequence restarts."""
    if keep is None:
        return {}
    steps = (keep == 0).flatten(2).any(2).any(0).nonzero().flatten().tolist()
    return {t: keep[:, t] for t in steps}


def _sum_to(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A broadcast gradient reduced back to the shape (and realness) of ``like``."""
    grad = grad.sum_to_size(like.shape) if grad.shape != like.shape else grad
    return grad.real if grad.is_complex() and not like.is_complex() else grad


def _expand(flag: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return flag.reshape(flag.shape + (1,) * (like.ndim - flag.ndim))


class Resettable(Monoid):
    """Any monoid plus a start flag (bool, the last tensor of an element): a start forgets the past."""

    def __init__(self, inner: Monoid) -> None:
        self.inner = inner

    def identity(self, like: Element) -> Element:
        return (*self.inner.identity(like[:-1]), torch.zeros_like(like[-1], dtype=torch.bool))

    def combine(self, a: Element, b: Element) -> Element:
        *h, s = a
        *h2, s2 = b
        e = self.inner.identity(tuple(h))
        h = tuple(torch.where(_expand(s2, x), ex, x) for x, ex in zip(h, e))
        return (*self.inner.combine(h, tuple(h2)), s | s2)

    def recurrence(self, xs: Element, starts: torch.Tensor, initial: Element) -> Element | None:
        """The inner monoid's recurrences restarting at the elements' own flags (``starts`` unused)."""
        *h, s = xs
        *h0, s0 = initial
        prefix = self.inner.recurrence(tuple(h), s, tuple(h0))
        if prefix is None:
            return None
        return (*prefix, s.cummax(dim=1).values | s0.unsqueeze(1))


def _steps(xs: Element, start: int, stop: int, step: int = 1) -> Element:
    return tuple(x[:, start:stop:step] for x in xs)


def _cat(a: Element, b: Element) -> Element:
    return tuple(torch.cat([x, y], dim=1) for x, y in zip(a, b))


def _odd_even_scan(monoid: Monoid, xs: Element) -> Element:
    """Inclusive prefixes along dim 1: pairs are combined, the half-length sequence is scanned
    recursively, and the even positions are filled in from it (depth 2 log T, ~2T combines)."""
    T = xs[0].shape[1]
    if T == 1:
        return xs
    n = T // 2
    odd = _odd_even_scan(monoid, monoid.combine(_steps(xs, 0, 2 * n, 2), _steps(xs, 1, 2 * n, 2)))
    rest = _steps(xs, 2, T, 2)  # elements 2, 4, ...: (T - 1) // 2 of them
    even = _cat(_steps(xs, 0, 1), monoid.combine(_steps(odd, 0, rest[0].shape[1]), rest))
    woven = tuple(torch.stack([e[:, :n], o], dim=2).flatten(1, 2) for e, o in zip(even, odd))
    return _cat(woven, _steps(even, n, n + 1)) if T % 2 else woven


def parallel_scan(monoid: Monoid, xs: Element, initial: Element | None = None) -> Element:
    """``initial . x_1 . ... . x_t`` for every t (dim 1 is time), in log depth."""
    prefix = _odd_even_scan(monoid, xs)
    if initial is None:
        return prefix
    return monoid.combine(tuple(x.unsqueeze(1) for x in initial), prefix)


def sequential_scan(monoid: Monoid, xs: Element, initial: Element | None = None) -> Element:
    """The same prefixes as ``parallel_scan``, one time step after another: the monoid's linear
    recurrence if it has one, else ``loop_scan``."""
    if initial is None:
        initial = tuple(v[:, 0] for v in monoid.identity(tuple(x[:, :1] for x in xs)))
    no_starts = torch.zeros(xs[0].shape[:2], dtype=torch.bool, device=xs[0].device)
    prefix = monoid.recurrence(xs, no_starts, initial)
    return loop_scan(monoid, xs, initial) if prefix is None else prefix


def loop_scan(monoid: Monoid, xs: Element, initial: Element | None = None) -> Element:
    """The definition of a scan: ``combine`` in a Python loop (the reference the others match)."""
    state, out = initial, []
    for x in zip(*(v.unbind(1) for v in xs)):  # unbind: one backward node, not T full-size ones
        state = x if state is None else monoid.combine(state, x)
        out.append(state)
    return tuple(torch.stack(values, dim=1) for values in zip(*out))


def scan(monoid: Monoid, xs: Element, initial: Element | None = None, mode: str = "auto") -> Element:
    """Prefixes by the chosen scan; ``"auto"`` takes the faster one for the tensors' device."""
    if mode == "auto":
        mode = FASTER_SCAN.get(xs[0].device.type, "parallel")
    if mode == "parallel":
        return parallel_scan(monoid, xs, initial)
    if mode == "sequential":
        return sequential_scan(monoid, xs, initial)
    raise ValueError(f"scan mode must be one of {SCANS}, got {mode!r}")


class MemoroidLayer(nn.Module):
    """A cell around a monoid: inputs -> elements, one resettable scan, (prefix, input) -> output.

    Subclasses set ``size`` (input and output width) and define ``monoid``, ``elements`` and
    ``readout``. The carried state is the last prefix, an element of shape ``(B, ...)`` (start flag
    included).
    """

    size: int

    def __init__(self, scan_mode: str = "auto") -> None:
        super().__init__()
        if scan_mode not in SCANS:
            raise ValueError(f"scan mode must be one of {SCANS}, got {scan_mode!r}")
        self.scan_mode = scan_mode

    def monoid(self) -> Monoid:
        raise NotImplementedError

    def elements(self, x: torch.Tensor) -> tuple[Element, Element]:
        """Elements (B, T, ...) of inputs x (B, T, size), and what ``readout`` needs besides the prefix."""
        raise NotImplementedError

    def readout(self, prefix: Element, aux: Element) -> torch.Tensor:
        """Outputs (B, T, size) from the prefixes (start flag removed) and ``elements``' aux."""
        raise NotImplementedError

    def initial_state(self, batch_size: int, device=None) -> Element:
        """The identity element for ``batch_size`` sequences (nothing seen yet)."""
        param = next(self.parameters())
        x = torch.zeros(batch_size, 1, self.size, device=device or param.device, dtype=param.dtype)
        with torch.no_grad():
            xs = self.elements(x)[0]
        like = (*xs, torch.zeros(batch_size, 1, dtype=torch.bool, device=x.device))
        return tuple(v[:, 0] for v in Resettable(self.monoid()).identity(like))

    def forward(self, x: torch.Tensor, starts: torch.Tensor, state: Element | None = None,
                mode: str | None = None) -> tuple[torch.Tensor, Element]:
        """x (B, T, size), starts (B, T) bool (True where an episode begins): outputs and final state.

        Under autocast (bf16 / fp16) only the cell's linear maps run in low precision: the scan
        runs in float32 / complex64, since decays raised to powers over thousands of steps and
        long running sums lose everything in 8 bits of mantissa (and CPU complex needs float32).
        """
        xs, aux = self.elements(x)
        with torch.autocast(x.device.type, enabled=False):
            xs = tuple(v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for v in xs)
            prefix = scan(Resettable(self.monoid()), (*xs, starts), state, mode or self.scan_mode)
        return self.readout(prefix[:-1], aux), tuple(v[:, -1] for v in prefix)
