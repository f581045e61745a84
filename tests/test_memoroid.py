"""Memoroid algebra and scans: associativity, identities, parallel == sequential == loop,
carried state, resets that forget, gradients of the fast recurrence, FFM precision at 100k steps."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rmdt.models.memoroid import (
    FASTER_SCAN,
    Resettable,
    linear_recurrence,
    loop_scan,
    parallel_scan,
    scan,
    sequential_scan,
)
from rmdt.models.memoroid_layers import FFM, LAYERS, DiagonalLinearMonoid, FFMMonoid, SumMonoid


def ffm_monoid(g):
    return FFMMonoid(torch.rand(3, 2, generator=g, dtype=torch.float64) * 0.3,
                     torch.rand(3, 2, generator=g, dtype=torch.float64) * 6)


def ffm_element(g, shape):
    s = torch.randn(*shape, 3, 2, generator=g, dtype=torch.complex128)
    return s, torch.randint(0, 50, (*shape, 1, 1), generator=g).double()


def sum_element(g, shape):
    return torch.randn(*shape, 2, 3, generator=g, dtype=torch.float64), torch.rand(*shape, 2, generator=g,
                                                                                   dtype=torch.float64)


def lru_element(g, shape):
    a = torch.polar(torch.rand(*shape, 4, generator=g, dtype=torch.float64),
                    torch.rand(*shape, 4, generator=g, dtype=torch.float64) * 6)
    return a, torch.randn(*shape, 4, generator=g, dtype=torch.complex128)


MONOIDS = {"ffm": (ffm_monoid, ffm_element), "sum": (lambda g: SumMonoid(), sum_element),
           "lru": (lambda g: DiagonalLinearMonoid(), lru_element)}


def close(a, b, tol):
    for x, y in zip(a, b):
        if x.dtype == torch.bool:
            assert torch.equal(x, y)
        else:
            torch.testing.assert_close(x, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", MONOIDS)
@pytest.mark.parametrize("resettable", [False, True], ids=["plain", "resettable"])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2 ** 31), flags=st.lists(st.booleans(), min_size=3, max_size=3))
def test_operator_is_associative_and_identity_is_neutral(name, resettable, seed, flags):
    make_monoid, make_element = MONOIDS[name]
    g = torch.Generator().manual_seed(seed)
    monoid = make_monoid(g)
    a, b, c = (make_element(g, (2,)) for _ in range(3))
    if resettable:
        monoid = Resettable(monoid)
        a, b, c = ((*x, torch.full((2,), f)) for x, f in zip((a, b, c), flags))
    close(monoid.combine(monoid.combine(a, b), c), monoid.combine(a, monoid.combine(b, c)), 1e-9)
    e = monoid.identity(a)
    close(monoid.combine(e, a), a, 1e-9)
    close(monoid.combine(a, e), a, 1e-9)


def random_tape(layer, T, seed=0, batch=3, p_start=0.15):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, layer.size, generator=g)
    starts = torch.rand(batch, T, generator=g) < p_start
    return x, starts


def random_state(layer, batch, seed=1):
    """A state as if some earlier chunk had been seen (not the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = torch.randn(batch, 7, layer.size, generator=g)
        return layer(x, torch.zeros(batch, 7, dtype=torch.bool))[1]


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("T", [1, 2, 5, 33])
def test_parallel_equals_sequential_equals_loop_with_carried_state(name, T):
    torch.manual_seed(0)
    layer = LAYERS[name](8)
    x, starts = random_tape(layer, T)
    state = random_state(layer, 3)
    xs, aux = layer.elements(x)
    elements = (*xs, starts)
    monoid = Resettable(layer.monoid())
    reference = loop_scan(monoid, elements, state)
    close(parallel_scan(monoid, elements, state), reference, 1e-5)
    close(sequential_scan(monoid, elements, state), reference, 1e-5)
    outputs = {mode: layer(x, starts, state, mode=mode) for mode in ("parallel", "sequential")}
    torch.testing.assert_close(outputs["parallel"][0], outputs["sequential"][0], rtol=1e-5, atol=1e-5)
    close(outputs["parallel"][1], outputs["sequential"][1], 1e-5)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_chunks_and_single_steps_match_one_long_scan(name, mode):
    torch.manual_seed(0)
    layer = LAYERS[name](8)
    x, starts = random_tape(layer, 40, seed=2)
    whole, final = layer(x, starts, mode=mode)
    state, chunks = layer.initial_state(3), []
    for lo, hi in [(0, 9), (9, 10), (10, 31), (31, 40)]:
        out, state = layer(x[:, lo:hi], starts[:, lo:hi], state, mode=mode)
        chunks.append(out)
    torch.testing.assert_close(torch.cat(chunks, 1), whole, rtol=1e-5, atol=1e-5)
    close(state, final, 1e-5)
    state, steps = layer.initial_state(3), []
    for t in range(40):
        out, state = layer(x[:, t:t + 1], starts[:, t:t + 1], state, mode=mode)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_a_start_flag_forgets_everything_before_it(name, mode):
    torch.manual_seed(0)
    layer = LAYERS[name](8)
    x, starts = random_tape(layer, 30, seed=3, p_start=0.0)
    starts[:, 12] = True
    x = x.requires_grad_()
    out, _ = layer(x, starts, random_state(layer, 3), mode=mode)
    changed = x.detach().clone()
    changed[:, :12] += 5 * torch.randn_like(changed[:, :12])
    out2, _ = layer(changed, starts, layer.initial_state(3), mode=mode)
    torch.testing.assert_close(out2[:, 12:], out[:, 12:], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out2[:, :12], out[:, :12])  # the perturbation did matter before the start
    grad, = torch.autograd.grad(out[:, 12:].sum(), x)
    assert torch.all(grad[:, :12] == 0) and grad[:, 12:].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_fast_recurrence_gradients(dtype):
    g = torch.Generator().manual_seed(0)
    coef = (torch.randn(2, 6, 3, generator=g, dtype=dtype) * 0.5).requires_grad_()
    inputs = torch.randn(2, 6, 3, generator=g, dtype=dtype, requires_grad=True)
    initial = torch.randn(2, 3, generator=g, dtype=dtype, requires_grad=True)
    assert torch.autograd.gradcheck(linear_recurrence, (coef, inputs, initial))
    broadcast_coef = (torch.rand(1, 6, 1, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(linear_recurrence, (broadcast_coef, inputs, initial))


def test_scan_modes():
    monoid, element = SumMonoid(), sum_element(torch.Generator().manual_seed(0), (2, 5))
    close(scan(monoid, element), loop_scan(monoid, element), 1e-12)
    assert FASTER_SCAN["cpu"] in ("parallel", "sequential")
    with pytest.raises(ValueError, match="scan mode"):
        scan(monoid, element, mode="fast")
    with pytest.raises(ValueError, match="scan mode"):
        FFM(4, scan_mode="fast")


def ffm_reference(x: np.ndarray, alpha: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """Seed 000 in float64, step by step: S_t = gamma * S_{t-1} + x_t, gamma = exp(-alpha + i omega)."""
    gamma = np.exp(-alpha + 1j * omega)
    out = np.empty((len(x),) + gamma.shape, np.complex128)
    state = np.zeros(gamma.shape, np.complex128)
    for t in range(len(x)):
        state = gamma * state + x[t][:, None]
        out[t] = state
    return out


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
@pytest.mark.slow
def test_ffm_float32_is_finite_and_accurate_over_100k_steps(mode):
    T, m, c = 100_000, 4, 2
    torch.manual_seed(0)
    layer = FFM(8, memory_size=m, context_size=c, horizon=1024)  # slowest trace: alpha = 1e-6
    x = torch.rand(1, T, m) - 0.3  # a drift, so the slow traces grow large
    monoid = Resettable(layer.monoid())
    elements = (x[..., None].expand(1, T, m, c).to(torch.complex64), torch.ones(1, T, 1, 1),
                torch.zeros(1, T, dtype=torch.bool))
    with torch.no_grad():
        prefix = scan(monoid, elements, mode=mode)[0][0]
        alpha = layer.log_alpha.exp()[:, None].expand(m, c).double().numpy()
        omega = layer.omega[None, :].expand(m, c).double().numpy()
    reference = ffm_reference(x[0].double().numpy(), alpha, omega)
    assert torch.isfinite(torch.view_as_real(prefix)).all()
    error = np.abs(prefix.numpy() - reference)
    scale = np.abs(reference).max(axis=0)  # per trace and context
    assert np.all(error <= 1e-3 * scale + 1e-4), float((error / scale).max())
    with torch.no_grad():  # the whole layer, with resets, stays finite too
        out, _ = layer(torch.randn(1, T, 8), torch.rand(1, T) < 1e-3, mode=mode)
    assert torch.isfinite(out).all()


def test_ffm_relative_time_never_overflows_where_absolute_time_would():
    monoid = FFMMonoid(torch.full((1, 1), 1.0), torch.full((1, 1), 0.5))  # absolute time: exp(+1.0 * 1e5)
    s = torch.ones(1, 1, 1, dtype=torch.complex64)
    a = (s, torch.full((1, 1, 1), 1e5))
    out = monoid.combine(a, a)
    assert torch.isfinite(torch.view_as_real(out[0])).all()
    assert math.isclose(out[1].item(), 2e5)
