"""FineTec's physics module (modalities/skeleton/finetec_physics.py): finite differences and the
Euler-Lagrange acceleration, checked against a two-link arm whose true acceleration comes from its
Lagrangian by automatic differentiation (an independent derivation)."""

from __future__ import annotations

import pytest
import torch

from actionfusion.modalities.skeleton.finetec_physics import (EulerLagrangeAcceleration, euler_lagrange_acceleration,
                                                              finite_difference_acceleration,
                                                              finite_difference_velocity)

pytestmark = pytest.mark.usefixtures("one_thread")

M1, M2, L1, L2, G = 1.3, 0.7, 0.9, 0.6, 9.81


def test_finite_difference_acceleration_of_a_quadratic_is_constant() -> None:
    t = torch.arange(20, dtype=torch.float64)[:, None]
    a, b, c = torch.randn(1, 6, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64), torch.randn(1, 6)
    x = (a * t ** 2 + b * t + c)[None, None]  # [1, 1, T, 6]
    for dt in (1.0, 0.1):
        acc = finite_difference_acceleration(x, dt)
        torch.testing.assert_close(acc, (2 * a / dt ** 2).expand_as(acc), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(finite_difference_velocity(x)[..., 1:-1, :], (2 * a * t + b)[1:-1].expand(1, 1, 18, 6))
    with pytest.raises(ValueError):
        finite_difference_acceleration(x[..., :2, :])


def arm_terms(q: torch.Tensor, q_dot: torch.Tensor):
    """Two-link planar arm, point masses at the link ends: M, C, g (textbook closed form)."""
    c2, s2 = torch.cos(q[..., 1]), torch.sin(q[..., 1])
    m11 = (M1 + M2) * L1 ** 2 + M2 * L2 ** 2 + 2 * M2 * L1 * L2 * c2
    m12 = M2 * L2 ** 2 + M2 * L1 * L2 * c2
    m22 = torch.full_like(m11, M2 * L2 ** 2)
    mass = torch.stack([torch.stack([m11, m12], -1), torch.stack([m12, m22], -1)], -2)
    h = M2 * L1 * L2 * s2
    coriolis = torch.stack([torch.stack([-h * q_dot[..., 1], -h * (q_dot[..., 0] + q_dot[..., 1])], -1),
                            torch.stack([h * q_dot[..., 0], torch.zeros_like(h)], -1)], -2)
    g1 = (M1 + M2) * G * L1 * torch.cos(q[..., 0]) + M2 * G * L2 * torch.cos(q[..., 0] + q[..., 1])
    g2 = M2 * G * L2 * torch.cos(q[..., 0] + q[..., 1])
    return mass, coriolis, torch.stack([g1, g2], -1)


def lagrangian(q: torch.Tensor, q_dot: torch.Tensor) -> torch.Tensor:
    p1 = L1 * torch.stack([torch.cos(q[0]), torch.sin(q[0])])
    v1 = L1 * q_dot[0] * torch.stack([-torch.sin(q[0]), torch.cos(q[0])])
    p2 = p1 + L2 * torch.stack([torch.cos(q[0] + q[1]), torch.sin(q[0] + q[1])])
    v2 = v1 + L2 * (q_dot[0] + q_dot[1]) * torch.stack([-torch.sin(q[0] + q[1]), torch.cos(q[0] + q[1])])
    kinetic = 0.5 * M1 * (v1 ** 2).sum() + 0.5 * M2 * (v2 ** 2).sum()
    return kinetic - (M1 * G * p1[1] + M2 * G * p2[1])


def true_acceleration(q: torch.Tensor, q_dot: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """d/dt dL/dq_dot - dL/dq = tau solved for the acceleration, by autograd."""
    hess = torch.autograd.functional.hessian(lagrangian, (q, q_dot))
    grad_q = torch.autograd.functional.jacobian(lambda z: lagrangian(z, q_dot), q)
    h_vv, h_vq = hess[1][1], hess[1][0]  # d2L/dq_dot2, d2L/dq_dot dq
    return torch.linalg.solve(h_vv, tau + grad_q - h_vq @ q_dot)


def test_euler_lagrange_with_known_terms_reproduces_the_true_acceleration() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        q = torch.randn(2, generator=generator, dtype=torch.float64)
        q_dot = torch.randn(2, generator=generator, dtype=torch.float64)
        tau = torch.randn(2, generator=generator, dtype=torch.float64)
        mass, coriolis, gravity = arm_terms(q, q_dot)
        acc = euler_lagrange_acceleration(mass, coriolis, gravity, tau, q_dot)
        torch.testing.assert_close(acc, true_acceleration(q, q_dot, tau), rtol=1e-10, atol=1e-10)


class KnownArm(EulerLagrangeAcceleration):
    """The estimator with the arm's exact terms in place of its networks (tau = 0: free fall)."""

    def terms(self, q, q_dot, context):
        mass, coriolis, gravity = arm_terms(q, q_dot)
        return mass, coriolis, gravity, torch.zeros_like(q)


def test_module_with_known_terms_follows_the_arm() -> None:
    module = KnownArm(num_joints=1, in_channels=2, coupling="body").double()
    x = torch.randn(3, 1, 8, 1, 2, dtype=torch.float64)  # [B, M, T, V=1, C=2]: the two joint angles
    acc = module(x)
    q_dot = finite_difference_velocity(x.squeeze(3).squeeze(1))  # [B, T, 2]
    for b in range(3):
        for t in range(8):
            expected = true_acceleration(x[b, 0, t, 0], q_dot[b, t], torch.zeros(2, dtype=torch.float64))
            torch.testing.assert_close(acc[b, 0, t, 0], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("coupling", ["joint", "body"])
def test_learned_estimator_shapes_and_gradients(coupling: str) -> None:
    torch.manual_seed(0)
    module = EulerLagrangeAcceleration(num_joints=17, in_channels=2, hidden=16, coupling=coupling)
    x = torch.randn(2, 1, 6, 17, 2)
    acc = module(x)
    assert acc.shape == x.shape and torch.isfinite(acc).all()
    acc.square().mean().backward()
    assert all(p.grad is not None for p in module.parameters())
    mass = module.terms(torch.randn(5, module.dof), torch.randn(5, module.dof),
                        module.joint_embedding(torch.zeros(5, dtype=torch.long)) if coupling == "joint"
                        else torch.zeros(5, 0))[0]
    assert torch.all(torch.linalg.eigvalsh(mass) > 0)  # M is positive definite
