"""Optimizers, max-norm and learning-rate schedules, against closed-form updates."""

import math

import numpy as np
import pytest

import layers
from minigrad import Tensor, optim, random
from minigrad.backend import device_of

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum_decay_dampening": lambda ps: optim.SGD(
        ps, lr=0.1, momentum=0.9, weight_decay=0.01, dampening=0.1),
    "sgd_nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                         weight_decay=0.01),
    "adam_l2": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
}


def param(backend, values, dtype=np.float64):
    return layers.Parameter(backend.array(values, dtype))


def run_steps(optimizer, p, backend, grads):
    """One step per gradient; the parameter's values after each step."""
    history = []
    for g in grads:
        p.grad = backend.array([g], p.dtype)
        optimizer.step()
        history.append(float(backend.numpy(p)[0]))
    return history


def small_model(device, seed=0, dtype=np.float32):
    gen = random.Generator(seed)
    return layers.Sequential(
        layers.Linear(4, 3, device=device, dtype=dtype, generator=gen), layers.ReLU(),
        layers.Linear(3, 2, device=device, dtype=dtype, generator=gen))


def set_grads(model, backend, step):
    """Deterministic gradients, a function of (step, parameter index) only."""
    for i, p in enumerate(model.parameters()):
        values = np.random.default_rng((step, i)).standard_normal(p.shape)
        p.grad = backend.array(values, p.dtype)


@pytest.mark.parametrize("hyper,expected", [
    ({}, [0.95, 0.975, 0.875]),                                        # p - lr * g
    ({"momentum": 0.9}, [0.95, 0.93, 0.812]),                          # b = 0.9 b + g
    ({"momentum": 0.9, "dampening": 0.5}, [0.95, 0.9175, 0.83825]),    # b = 0.9 b + 0.5 g
    ({"momentum": 0.9, "nesterov": True}, [0.905, 0.912, 0.7058]),     # d = g + 0.9 b
])
def test_sgd_first_steps_match_hand_computation(backend, hyper, expected):
    p = param(backend, [1.0])
    sgd = optim.SGD([p], lr=0.1, **hyper)
    assert run_steps(sgd, p, backend, [0.5, -0.25, 1.0]) == pytest.approx(expected, abs=1e-14)


def test_sgd_weight_decay_adds_l2_gradient(backend):
    p = param(backend, [2.0])
    sgd = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    # g1 = 0.5 + 0.02 = 0.52, p = 1.948; g2 = 0.5 + 0.01948, b = 0.9 * 0.52 + g2 = 0.98748
    assert run_steps(sgd, p, backend, [0.5, 0.5]) == pytest.approx([1.948, 1.849252], abs=1e-14)


def adam_reference(p, grads, lr, betas, eps, weight_decay, decoupled):
    """Adam/AdamW in the bias-corrected m_hat / v_hat form, on Python floats."""
    m = v = 0.0
    history = []
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
        history.append(p)
    return history


@pytest.mark.parametrize("cls,weight_decay", [
    (optim.Adam, 0.0), (optim.Adam, 0.1), (optim.AdamW, 0.1)])
def test_adam_steps_match_bias_corrected_closed_form(backend, cls, weight_decay):
    grads = [0.5, -0.25, 1.0, 0.0]
    p = param(backend, [1.5])
    adam = cls([p], lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=weight_decay)
    expected = adam_reference(1.5, grads, 0.1, (0.8, 0.95), 1e-3, weight_decay,
                              decoupled=cls is optim.AdamW)
    assert run_steps(adam, p, backend, grads) == pytest.approx(expected, rel=1e-13)


def test_adam_first_step_is_lr_times_sign_after_bias_correction(backend):
    g = np.array([0.5, -1e-3, 4.0])
    p = param(backend, [1.0, -2.0, 3.0])
    p.grad = backend.array(g)
    adam = optim.Adam([p], lr=0.1)
    adam.step()
    state = adam.state[0]
    assert state["step"] == 1
    np.testing.assert_allclose(backend.numpy(state["exp_avg"]), 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(backend.numpy(state["exp_avg_sq"]), 0.001 * g * g, rtol=1e-15)
    # m_hat = g and v_hat = g**2, so the step is lr * g / (|g| + eps)
    expected = np.array([1.0, -2.0, 3.0]) - 0.1 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(backend.numpy(p), expected, rtol=1e-14)


def test_adamw_decay_is_decoupled_from_the_gradient_scale(backend):
    """With a zero gradient AdamW shrinks p by (1 - lr*wd); Adam + L2 moves p by ~lr*sign(p)."""
    start = [2.0, -0.5]
    adamw_p, adam_p = param(backend, start), param(backend, start)
    adamw = optim.AdamW([adamw_p], lr=0.1, weight_decay=0.1)
    adam = optim.Adam([adam_p], lr=0.1, weight_decay=0.1)
    for p, opt in ((adamw_p, adamw), (adam_p, adam)):
        p.grad = backend.array([0.0, 0.0])
        opt.step()
    np.testing.assert_allclose(backend.numpy(adamw_p), np.array(start) * 0.99, rtol=1e-15)
    g = 0.1 * np.array(start)    # the L2 gradient, normalised by sqrt(v_hat) = |g|
    np.testing.assert_allclose(backend.numpy(adam_p), start - 0.1 * g / (np.abs(g) + 1e-8),
                               rtol=1e-14)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float32_params_and_state_stay_float32_on_their_device(backend, name):
    models = small_model(backend.device), small_model(backend.device)
    opts = [OPTIMIZERS[name](model.parameters()) for model in models]
    opts[0].lr = 0.05
    opts[1].lr = np.float64(0.05)   # a NumPy float64 lr must not switch the math to float64
    for model, opt in zip(models, opts):
        for step in range(3):
            set_grads(model, backend, step)
            opt.step()
    for p, q, state in zip(models[0].parameters(), models[1].parameters(), opts[1].state):
        assert p.data.dtype == np.float32 and device_of(p.data) == backend.device
        assert backend.numpy(p).tobytes() == backend.numpy(q).tobytes()
        for value in state.values():
            if hasattr(value, "dtype"):
                assert value.dtype == np.float32 and device_of(value) == backend.device


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_step_updates_in_place_and_leaves_grads_alone(backend, name):
    a, b = param(backend, [1.0, 2.0]), param(backend, [3.0, -4.0])
    shared = backend.array([0.5, -0.5])   # one gradient array handed to two parameters
    a.grad = b.grad = shared
    arrays = (a.data, b.data)
    opt = OPTIMIZERS[name]([a, b])
    opt.step()
    opt.step()
    assert (a.data, b.data) == arrays and a.grad is shared
    np.testing.assert_array_equal(backend.numpy(shared), [0.5, -0.5])
    assert not np.array_equal(backend.numpy(a), [1.0, 2.0])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_parameters_without_grad_are_skipped(name, backend):
    moved, idle = param(backend, [1.0]), param(backend, [1.0])
    moved.grad = backend.array([1.0])
    opt = OPTIMIZERS[name]([moved, idle])
    opt.step()
    assert backend.numpy(idle)[0] == 1.0 and opt.state[1] == {}
    assert backend.numpy(moved)[0] != 1.0


def test_zero_grad_sets_every_grad_to_none(backend):
    model = small_model(backend.device)
    set_grads(model, backend, 0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_continues_bit_identically(backend, name):
    model = small_model(backend.device, seed=1)
    opt = OPTIMIZERS[name](model.parameters())
    for step in range(3):
        set_grads(model, backend, step)
        opt.step()
    saved_model, saved_opt = model.state_dict(), opt.state_dict()
    assert all(isinstance(v, np.ndarray) for s in saved_opt["state"] for v in s.values()
               if hasattr(v, "shape"))
    for step in range(3, 6):
        set_grads(model, backend, step)
        opt.step()

    resumed = small_model(backend.device, seed=2)
    resumed.load_state_dict(saved_model)
    resumed_opt = OPTIMIZERS[name](resumed.parameters())
    resumed_opt.lr = 123.0   # overwritten by the saved hyperparameters
    resumed_opt.load_state_dict(saved_opt)
    for step in range(3, 6):
        set_grads(resumed, backend, step)
        resumed_opt.step()
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert backend.numpy(p).tobytes() == backend.numpy(q).tobytes()


def test_state_dict_is_a_snapshot(backend):
    p = param(backend, [1.0, 2.0])
    p.grad = backend.array([1.0, 1.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    saved = opt.state_dict()
    opt.step()
    np.testing.assert_array_equal(saved["state"][0]["momentum_buffer"], [1.0, 1.0])


def test_load_state_dict_rejects_a_different_optimizer_or_model():
    model = small_model("cpu")
    saved = optim.Adam(model.parameters()).state_dict()
    with pytest.raises(ValueError, match="saved from 'Adam', not SGD"):
        optim.SGD(model.parameters(), lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="has 4 parameters but this optimizer has 2"):
        optim.Adam(model.parameters()[:2]).load_state_dict(saved)
    saved["state"][0] = {"step": 1, "exp_avg": np.zeros((2, 2)), "exp_avg_sq": np.zeros((2, 2))}
    with pytest.raises(ValueError, match="'exp_avg' of parameter 0 has shape"):
        optim.Adam(model.parameters()).load_state_dict(saved)


@pytest.mark.parametrize("make,match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), "lr must be in"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=1.0), "momentum must be in"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "dampening = 0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, 1.0)), r"betas\[1\] must be in"),
    (lambda ps: optim.Adam(ps, betas=0.9), "betas must be a pair"),
    (lambda ps: optim.AdamW(ps, eps=-1.0), "eps must be in"),
    (lambda ps: optim.SGD(ps, lr="fast"), "lr must be a number"),
])
def test_bad_hyperparameters_are_rejected_with_a_clear_error(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make([layers.Parameter(np.zeros(2, np.float32))])


def test_bad_parameter_lists_are_rejected_with_a_clear_error():
    model = layers.Linear(2, 2)
    with pytest.raises(TypeError, match=r"pass model.parameters\(\)"):
        optim.SGD(model, lr=0.1)
    with pytest.raises(TypeError, match=r"wrap it in a list"):
        optim.SGD(model.weight, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="appears more than once"):
        optim.Adam([model.weight, model.weight])
    with pytest.raises(TypeError, match="only floating-point"):
        optim.Adam([layers.Parameter(np.arange(3), requires_grad=False)])


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_training_a_small_regression_drives_the_loss_down(name):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((32, 4)).astype(np.float32))
    target = Tensor(rng.standard_normal((32, 2)).astype(np.float32) * 0.1)
    model = small_model("cpu")
    opt = OPTIMIZERS[name](model.parameters())
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_updates_match_pytorch(name):
    torch = pytest.importorskip("torch")
    torch_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    ours = OPTIMIZERS[name]([layers.Parameter(np.zeros((3, 4)))])
    kwargs = ours.hyperparameters()
    start = np.random.default_rng(7).standard_normal((3, 4))
    ours.params[0].data[...] = start
    theirs_p = torch.tensor(start, requires_grad=True)
    theirs = torch_cls[name.split("_")[0]]([theirs_p], **kwargs)
    for step in range(6):
        g = np.random.default_rng(step).standard_normal((3, 4))
        ours.params[0].grad = g
        theirs_p.grad = torch.tensor(g)
        ours.step()
        theirs.step()
    np.testing.assert_allclose(ours.params[0].data, theirs_p.detach().numpy(), rtol=1e-12,
                               atol=1e-14)


def test_max_norm_scales_long_rows_to_c_and_leaves_the_rest_untouched(backend):
    rows = np.array([[3.0, 4.0, 0.0], [0.5, -0.5, 1.0], [0.0, -3.0, 0.0], [0.0, 0.0, 0.0],
                     [-30.0, 1.0, 2.0]], dtype=np.float32)      # norms 5, ~1.22, 3, 0, ~30
    layer = layers.Linear(3, 5, device=backend.device)
    layer.weight.data = backend.array(rows)
    layer.bias.data = backend.array([100.0] * 5, np.float32)
    weight_array = layer.weight.data
    optim.MaxNorm(layer, max_norm=3.0).apply()
    w = backend.numpy(layer.weight)
    assert layer.weight.data is weight_array and w.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(w[[0, 4]], axis=1), 3.0, rtol=1e-6)
    np.testing.assert_allclose(w[0], [1.8, 2.4, 0.0], rtol=1e-6)   # direction kept
    assert w[1:4].tobytes() == rows[1:4].tobytes()                  # bit-identical
    np.testing.assert_array_equal(backend.numpy(layer.bias), 100.0)


def test_max_norm_finds_weights_in_modules_and_parameter_lists(backend):
    model = small_model(backend.device)
    for p in model.parameters():
        p.data = backend.array(np.full(p.shape, 10.0), np.float32)
    first, second = model[0].weight, model[2].weight
    expected = [id(first), id(second)]
    assert [id(p) for p in optim.MaxNorm(model).params] == expected
    assert [id(p) for p in optim.MaxNorm([model[0], second, first]).params] == expected
    optim.MaxNorm(model.parameters(), max_norm=1.0).apply()
    for w in (first, second):
        np.testing.assert_allclose(np.linalg.norm(backend.numpy(w), axis=1), 1.0, rtol=1e-6)
    for b in (model[0].bias, model[2].bias):
        np.testing.assert_array_equal(backend.numpy(b), 10.0)


def test_max_norm_of_a_conv_weight_is_per_output_channel(backend):
    w = np.random.default_rng(0).standard_normal((4, 2, 3, 3))
    w[1] *= 0.01                                        # channel 1 is inside the ball
    p = param(backend, w)
    optim.MaxNorm(p, max_norm=1.0).apply()
    out = backend.numpy(p)
    np.testing.assert_allclose(np.sqrt((out[[0, 2, 3]] ** 2).sum(axis=(1, 2, 3))), 1.0,
                               rtol=1e-12)
    assert out[1].tobytes() == w[1].tobytes()


def test_max_norm_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"max_norm must be in \(0.0"):
        optim.MaxNorm(layers.Linear(2, 2), max_norm=0)
    with pytest.raises(ValueError, match="no weights with two or more axes"):
        optim.MaxNorm([layers.Linear(2, 2).bias])
    with pytest.raises(TypeError, match="expected Modules or Parameters"):
        optim.MaxNorm([np.zeros((2, 2))])


def lr_sequence(schedule, steps):
    return [schedule.optimizer.lr] + [schedule.step() for _ in range(steps)]


def sgd(lr=0.1):
    return optim.SGD([layers.Parameter(np.zeros(2, np.float32))], lr=lr)


@pytest.mark.parametrize("make,closed_form", [
    (lambda o: optim.StepLR(o, step_size=3, gamma=0.5), lambda t: 0.1 * 0.5 ** (t // 3)),
    (lambda o: optim.ExponentialLR(o, gamma=0.9), lambda t: 0.1 * 0.9 ** t),
    (lambda o: optim.CosineAnnealingLR(o, T_max=8, eta_min=0.01),
     lambda t: 0.01 + 0.09 * (1 + math.cos(math.pi * t / 8)) / 2),
    (lambda o: optim.LinearWarmup(o, warmup_steps=4),
     lambda t: 0.1 * min(t, 4) / 4),
    (lambda o: optim.LinearWarmup(o, warmup_steps=4, start_factor=0.2),
     lambda t: 0.1 * (0.2 + 0.8 * min(t, 4) / 4)),
])
def test_schedule_lr_sequence_matches_closed_form(make, closed_form):
    schedule = make(sgd())
    assert lr_sequence(schedule, 12) == pytest.approx([closed_form(t) for t in range(13)],
                                                      rel=1e-14, abs=1e-16)
    assert schedule.get_lr() == schedule.optimizer.lr


def test_cosine_reaches_midpoint_and_eta_min():
    lrs = lr_sequence(optim.CosineAnnealingLR(sgd(), T_max=10, eta_min=0.02), 10)
    assert lrs[5] == pytest.approx(0.06) and lrs[10] == pytest.approx(0.02)


def test_warmup_then_cosine_hands_over_at_the_base_lr():
    opt = sgd()
    schedule = optim.LinearWarmup(opt, 3, after=optim.CosineAnnealingLR(opt, T_max=4))
    expected = [0.0, 0.1 / 3, 0.2 / 3, 0.1] + [
        0.1 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(1, 5)]
    assert lr_sequence(schedule, 7) == pytest.approx(expected, rel=1e-14, abs=1e-16)
    assert schedule.after.last_step == 4


def test_base_lr_is_the_optimizer_lr_when_first_scheduled():
    opt = sgd(lr=0.5)
    optim.LinearWarmup(opt, 10)                 # sets opt.lr to 0 ...
    later = optim.StepLR(opt, step_size=2)      # ... but the base lr stays 0.5
    assert later.base_lr == 0.5 and opt.initial_lr == 0.5


def test_schedule_lr_drives_the_optimizer_step(backend):
    p = param(backend, [1.0])
    opt = optim.SGD([p], lr=1.0)
    schedule = optim.StepLR(opt, step_size=1, gamma=0.5)
    positions = []
    for _ in range(3):
        p.grad = backend.array([1.0])
        opt.step()
        schedule.step()
        positions.append(float(backend.numpy(p)[0]))
    assert positions == [0.0, -0.5, -0.75]


@pytest.mark.parametrize("make", [
    lambda o: optim.StepLR(o, 2, 0.5),
    lambda o: optim.LinearWarmup(o, 3, after=optim.CosineAnnealingLR(o, T_max=6)),
])
def test_schedule_state_dict_round_trip_continues_the_sequence(make):
    schedule = make(sgd())
    for _ in range(5):
        schedule.step()
    state = schedule.state_dict()
    expected = lr_sequence(schedule, 4)[1:]
    restored = make(sgd(lr=7.0))
    restored.load_state_dict(state)
    assert restored.optimizer.lr == schedule.lr_at(5)
    assert lr_sequence(restored, 4)[1:] == expected


@pytest.mark.parametrize("make,error,match", [
    (lambda o: optim.StepLR(o, step_size=0), ValueError, "step_size must be an integer >= 1"),
    (lambda o: optim.ExponentialLR(o, gamma=0.0), ValueError, "gamma must be in"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=2.5), ValueError, "T_max must be an integer"),
    (lambda o: optim.LinearWarmup(o, 2, start_factor=1.5), ValueError, "start_factor"),
    (lambda o: optim.LinearWarmup(o, 2, after=optim.StepLR(sgd(), 1)), ValueError,
     "drives a different optimizer"),
    (lambda o: optim.StepLR("sgd", 1), TypeError, "expected an Optimizer"),
    (lambda o: optim.StepLR(o, 1).load_state_dict(optim.ExponentialLR(sgd(), 0.9).state_dict()),
     ValueError, "saved from 'ExponentialLR', not StepLR"),
])
def test_bad_schedule_arguments_are_rejected_with_a_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make(sgd())


@pytest.mark.parametrize("ours,theirs", [
    (lambda o: optim.StepLR(o, 3, 0.5), lambda s, o: s.StepLR(o, 3, 0.5)),
    (lambda o: optim.ExponentialLR(o, 0.9), lambda s, o: s.ExponentialLR(o, 0.9)),
    (lambda o: optim.CosineAnnealingLR(o, 10, 0.01), lambda s, o: s.CosineAnnealingLR(o, 10, 0.01)),
    (lambda o: optim.LinearWarmup(o, 4, optim.CosineAnnealingLR(o, 10), start_factor=0.25),
     lambda s, o: s.SequentialLR(o, [s.LinearLR(o, 0.25, total_iters=4),
                                     s.CosineAnnealingLR(o, 10)], milestones=[4])),
])
def test_schedules_match_pytorch(ours, theirs):
    torch = pytest.importorskip("torch")
    torch_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    torch_schedule = theirs(torch.optim.lr_scheduler, torch_opt)
    expected = [torch_opt.param_groups[0]["lr"]]
    for _ in range(14):
        torch_opt.step()
        torch_schedule.step()
        expected.append(torch_opt.param_groups[0]["lr"])
    assert lr_sequence(ours(sgd()), 14) == pytest.approx(expected, rel=1e-12, abs=1e-15)
