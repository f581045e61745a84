"""Three memoroid layers (FFM, arXiv 2310.04128; memoroids, arXiv 2402.09900): Fast and Forgetful
Memory, linear attention and a diagonal linear recurrence (LRU / S5 style). Each maps
(B, T, size) -> (B, T, size) through one resettable scan (``rmdt.models.memoroid``); ``LAYERS`` names
them (the recurrent model picks its layer in ``rmdt.models.recurrent.MEMORY_LAYERS``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rmdt.models.memoroid import Element, MemoroidLayer, Monoid, linear_recurrence


def _keep(starts: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """1.0 where the previous prefix carries on, 0.0 at starts, shaped to broadcast with ``like``."""
    keep = (~starts).to(like.real.dtype)
    return keep.reshape(keep.shape + (1,) * (like.ndim - keep.ndim))


class FFMMonoid(Monoid):
    """FFM's aggregator in relative time: (S, i) . (S', j) = (S * gamma^j + S', i + j).

    Only gamma^j with j >= 0 ever appears, and |gamma| <= 1, so float32 never overflows at any
    length (the reference's absolute-time form multiplies by gamma^-t and needs float64).
    """

    def __init__(self, alpha: torch.Tensor, omega: torch.Tensor) -> None:
        self.alpha, self.omega = alpha, omega  # (m, c) each: gamma = exp(-alpha + i * omega)

    def power(self, j: torch.Tensor) -> torch.Tensor:
        """gamma^j in polar form (a complex exp is ~6x slower on CPU). Step counts that are one
        value broadcast over batch and time (a cell's unit steps) cost one power, not B * T."""
        if j.ndim >= 2 and j.stride(0) == 0 and j.stride(1) == 0:
            j = j[:1, :1]
        return torch.polar(torch.exp(-self.alpha * j), self.omega * j)

    def identity(self, like: Element) -> Element:
        return torch.zeros_like(like[0]), torch.zeros_like(like[1])

    def combine(self, a: Element, b: Element) -> Element:
        (s, i), (s2, j) = a, b
        return s * self.power(j) + s2, i + j

    def recurrence(self, xs, starts, initial):
        (s, j), (s0, i0) = xs, initial
        return linear_recurrence(self.power(j), s, s0, starts), _restarting_sum(j, starts, i0)


def _restarting_sum(j: torch.Tensor, starts: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """Running sums of step counts j (B, T, ...) that restart at starts, from ``initial`` (B, ...).

    Vectorised (no loop over time); exact while the counts are integers below 2^24 in float32.
    """
    total = j.cumsum(1)
    before = total - j  # the running sum just before each step
    position = torch.arange(starts.shape[1], device=starts.device).expand_as(starts)
    last = torch.where(starts, position, -1).cummax(1).values  # the latest start at or before t
    last = last.reshape(last.shape + (1,) * (j.ndim - 2))
    since_start = total - before.gather(1, last.clamp_min(0).expand_as(j))
    return torch.where(last >= 0, since_start, total + initial.unsqueeze(1))


class SumMonoid(Monoid):
    """Addition: linear attention's running sums."""

    def identity(self, like: Element) -> Element:
        return tuple(torch.zeros_like(x) for x in like)

    def combine(self, a: Element, b: Element) -> Element:
        return tuple(x + y for x, y in zip(a, b))

    def recurrence(self, xs, starts, initial):
        return tuple(linear_recurrence(_keep(starts, x), x, x0) for x, x0 in zip(xs, initial))


class DiagonalLinearMonoid(Monoid):
    """h_t = A_t * h_{t-1} + b_t as elements (A, b): (A, b) . (A', b') = (A' * A, A' * b + b')."""

    def identity(self, like: Element) -> Element:
        return torch.ones_like(like[0]), torch.zeros_like(like[1])

    def combine(self, a: Element, b: Element) -> Element:
        (a1, b1), (a2, b2) = a, b
        return a2 * a1, a2 * b1 + b2

    def recurrence(self, xs, starts, initial):
        (a, b), (a0, b0) = xs, initial
        keep = _keep(starts, a)
        coef = a * keep
        return linear_recurrence(coef, a - coef, a0), linear_recurrence(coef, b, b0)


def _complex(x: torch.Tensor) -> torch.Tensor:
    """complex64 from real x (float32 first: autocast may hand over bf16 or fp16)."""
    x = x.float()
    return torch.complex(x, torch.zeros_like(x))


def _real_parts(z: torch.Tensor, dims: int) -> torch.Tensor:
    """Real and imaginary parts of the last ``dims`` dimensions of z, flattened side by side."""
    return torch.cat([z.real.flatten(-dims), z.imag.flatten(-dims)], dim=-1)


class _AsReal(torch.autograd.Function):
    """``torch.view_as_real`` whose backward keeps the gradient's layout (torch's copies it to
    contiguous first, a full pass over the (B, T, m, c) traces)."""

    @staticmethod
    def forward(ctx, z):
        return torch.view_as_real(z)

    @staticmethod
    def backward(ctx, grad):
        viewable = grad.stride(-1) == 1 and all(stride % 2 == 0 for stride in grad.stride()[:-1])
        return torch.view_as_complex(grad if viewable else grad.contiguous())


class _Gates(torch.autograd.Function):
    """FFM's pre-activations (y, thru, in gate, out gate) -> (y * sigmoid(in), thru, sigmoid(out)),
    with a backward that writes one gradient buffer (split's backward concatenates the pieces'
    gradients: an extra pass over (B, T, 2m + 2 size))."""

    @staticmethod
    def forward(ctx, h, m, size):
        ctx.set_materialize_grads(False)
        y, thru, gate = h.split([m, size, m + size], dim=-1)
        gates = torch.sigmoid(gate)
        in_gate, out_gate = gates.split([m, size], dim=-1)
        ctx.save_for_backward(y, gates)
        ctx.sizes = [m, size, m, size]
        return y * in_gate, thru, out_gate

    @staticmethod
    def backward(ctx, grad_y, grad_thru, grad_out_gate):
        y, gates = ctx.saved_tensors
        grad = gates.new_empty(y.shape[:-1] + (sum(ctx.sizes),))
        to_y, to_thru, to_in, to_out = grad.split(ctx.sizes, dim=-1)
        in_gate, out_gate = gates.split(ctx.sizes[2:], dim=-1)
        for into, sig, upstream in ((to_in, in_gate, None if grad_y is None else grad_y * y),
                                    (to_out, out_gate, grad_out_gate)):
            if upstream is None:
                into.zero_()
            else:
                torch.ops.aten.sigmoid_backward.grad_input(upstream, sig, grad_input=into)
        if grad_y is None:
            to_y.zero_()
        else:
            torch.mul(grad_y, in_gate, out=to_y)
        if grad_thru is None:
            to_thru.zero_()
        else:
            to_thru.copy_(grad_thru)
        return grad, None, None


class _InitMemory:
    """Layers whose recurrence parameters have a structured initialisation (``memory_init``)."""

    @torch.no_grad()
    def reset_memory(self) -> None:
        for name, value in self.memory_init().items():
            getattr(self, name).copy_(value)


class FFM(_InitMemory, MemoroidLayer):
    """Fast and Forgetful Memory as the reference defines it (Morad et al., arXiv 2310.04128).

    ``y, thru, gate = Linear(x)``; ``S_t = gamma * S_{t-1} + y * sigmoid(in_gate)`` over m traces
    and c contexts with gamma = exp(-alpha + i * omega); ``out = LayerNorm(Linear(Re S, Im S)) *
    out_gate + thru * (1 - out_gate)``. alpha = exp(log_alpha) stays positive by construction.
    """

    def __init__(self, size: int, memory_size: int = 32, context_size: int = 4, horizon: int = 1024,
                 scan_mode: str = "auto") -> None:
        super().__init__(scan_mode)
        self.size, self.memory_size, self.context_size, self.horizon = size, memory_size, context_size, horizon
        m, c = memory_size, context_size
        self.pre = nn.Linear(size, 2 * m + 2 * size)
        self.mix = nn.Linear(2 * m * c, size)
        self.norm = nn.LayerNorm(size, elementwise_affine=False)
        # 1-D, so the trainer never applies weight decay to them (decay would pull alpha to 1).
        self.log_alpha = nn.Parameter(torch.empty(m))
        self.omega = nn.Parameter(torch.empty(c))
        self.reset_memory()

    def memory_init(self) -> dict[str, torch.Tensor]:
        """alpha from 1e-6 to ln(100)/horizon (the fastest trace keeps 1% after ``horizon`` steps);
        periods 2 pi / omega from 1 to ``horizon``."""
        alpha = torch.linspace(1e-6, math.log(100) / self.horizon, self.memory_size)
        return {"log_alpha": alpha.log(), "omega": 2 * math.pi / torch.linspace(1, self.horizon, self.context_size)}

    def monoid(self) -> Monoid:
        m, c = self.memory_size, self.context_size
        return FFMMonoid(self.log_alpha.exp()[:, None].expand(m, c), self.omega[None, :].expand(m, c))

    def elements(self, x):
        gated, thru, out_gate = _Gates.apply(self.pre(x), self.memory_size, self.size)
        # The scan runs in complex64 whatever autocast does to the matmuls: there is no complex bf16,
        # and a bf16 or fp16 mantissa would wash out the slow traces over long episodes.
        s = _complex(gated.float())[..., None].expand(*gated.shape, self.context_size)  # a view: c-fold, not copied
        return (s, x.new_ones(1, 1, 1, 1).expand(*x.shape[:2], 1, 1)), (thru, out_gate)  # unit steps

    def readout(self, prefix, aux):
        thru, out_gate = aux
        # (Re S, Im S) as stored, interleaved per trace, against mix's columns reordered to match:
        # the same sum without copying the (B, T, m, c) traces into [Re | Im].
        # The sequential scan stores them time-major: mix and norm run in that layout, not on a copy.
        weight = self.mix.weight.unflatten(1, (2, -1)).transpose(1, 2).flatten(1)
        traces = _AsReal.apply(prefix[0]).flatten(-3).transpose(0, 1)
        z = self.norm(F.linear(traces, weight, self.mix.bias)).transpose(0, 1).contiguous()
        return torch.lerp(thru, z.to(thru.dtype), out_gate)  # z * out_gate + thru * (1 - out_gate), one kernel


class LinearAttention(MemoroidLayer):
    """Causal linear attention (Katharopoulos et al.): elements (phi(k) v^T, phi(k)), summed;
    readout ``phi(q)^T S / phi(q)^T z`` per head, phi = 1 + elu."""

    def __init__(self, size: int, n_heads: int = 4, key_size: int = 16, scan_mode: str = "auto") -> None:
        super().__init__(scan_mode)
        if size % n_heads:
            raise ValueError(f"linear attention: size {size} is not divisible by n_heads={n_heads}")
        self.size, self.n_heads, self.key_size = size, n_heads, key_size
        self.qkv = nn.Linear(size, n_heads * 2 * key_size + size)
        self.out = nn.Linear(size, size)

    def monoid(self) -> Monoid:
        return SumMonoid()

    def elements(self, x):
        h, k = self.n_heads, self.key_size
        q, key, v = self.qkv(x).split([h * k, h * k, self.size], dim=-1)
        q, key = (F.elu(t.unflatten(-1, (h, k))) + 1 for t in (q, key))
        v = v.unflatten(-1, (h, self.size // h))
        return (key[..., :, None] * v[..., None, :], key), (q,)

    def readout(self, prefix, aux):
        (s, z), (q,) = prefix, aux
        num = torch.einsum("bthk,bthkv->bthv", q, s)
        den = (q * z).sum(-1, keepdim=True)
        return self.out((num / den).flatten(-2))


class LRU(_InitMemory, MemoroidLayer):
    """Linear Recurrent Unit (Orvieto et al. 2023): h_t = lambda * h_t-1 + gamma * B x_t, complex
    diagonal lambda = exp(-exp(nu) + i exp(theta)), output Re(C h_t) + D x_t."""

    def __init__(self, size: int, state_size: int = 64, r_min: float = 0.9, r_max: float = 0.999,
                 max_phase: float = math.pi / 10, scan_mode: str = "auto") -> None:
        super().__init__(scan_mode)
        self.size, self.state_size = size, state_size
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        self.nu_log = nn.Parameter(torch.empty(state_size))
        self.theta_log = nn.Parameter(torch.empty(state_size))
        self.B = nn.Linear(size, 2 * state_size, bias=False)  # real and imaginary parts
        self.C = nn.Linear(2 * state_size, size)
        self.D = nn.Parameter(torch.empty(size))
        self.reset_memory()

    def memory_init(self) -> dict[str, torch.Tensor]:
        """|lambda| uniform on the ring [r_min, r_max], phase uniform in [0, max_phase], D ~ N(0, 1)."""
        u1, u2 = torch.rand(self.state_size), torch.rand(self.state_size)
        r2 = u1 * (self.r_max ** 2 - self.r_min ** 2) + self.r_min ** 2
        return {"nu_log": torch.log(-0.5 * torch.log(r2)), "theta_log": torch.log(self.max_phase * u2 + 1e-4),
                "D": torch.randn(self.size)}

    def monoid(self) -> Monoid:
        return DiagonalLinearMonoid()

    def elements(self, x):
        nu = self.nu_log.exp()
        lam = torch.exp(torch.complex(-nu, self.theta_log.exp()))
        norm = torch.sqrt(-torch.expm1(-2 * nu))  # sqrt(1 - |lambda|^2): inputs keep unit scale
        re, im = self.B(x).float().chunk(2, dim=-1)  # float32 under autocast too: the scan's precision
        b = torch.complex(re, im) * norm
        return (lam.expand_as(b), b), (x,)

    def readout(self, prefix, aux):
        return self.C(_real_parts(prefix[1], 1)) + self.D * aux[0]


LAYERS = {"ffm": FFM, "linear_attention": LinearAttention, "lru": LRU}
