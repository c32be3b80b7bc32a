"""FineTec's physics module (reconstructed): joint accelerations from positions.

FineTec (SmartDianLab/FineTec; README and figures only, no code) estimates the accelerations
a_base, a_dyna, a_stat of its three sequences from the Euler-Lagrange form

    M(q) a + C(q, q_dot) q_dot + g(q) = tau

and feeds them, fused, to its GCN head. How M, C, g and tau are parameterised is not published.
Two estimators here, each an option:

- :func:`finite_difference_acceleration`: the baseline, the second difference of positions in time
  (central inside, one-sided second differences at the two ends, so it is exact for any quadratic
  trajectory everywhere).
- :class:`EulerLagrangeAcceleration`: learned. Small MLPs predict, from q and q_dot of each joint
  (``coupling="joint"``: a C-dof system per joint, block-diagonal M; reconstructed default) or of
  the whole body (``coupling="body"``: one V*C-dof system), the mass matrix M(q) (symmetric
  positive definite as L L^T + eps I, L lower-triangular with a softplus diagonal), the Coriolis
  matrix C(q, q_dot), the gravity vector g(q) and the generalised force tau(q, q_dot); the
  acceleration is ``solve(M, tau - C q_dot - g)``. q_dot is the central first difference of q.
  :func:`euler_lagrange_acceleration` is that solve alone (given M, C, g, tau), the part a test can
  check against a known mechanical system.
"""

from __future__ import annotations

from typing import Tuple

import torch
from einops import rearrange
from torch import nn


def finite_difference_velocity(x: torch.Tensor, dt: float = 1.0) -> torch.Tensor:
    """[..., T, D] -> [..., T, D]: central first difference inside, one-sided at the ends (T >= 2)."""
    if x.shape[-2] < 2:
        raise ValueError(f"a velocity needs at least 2 frames, got {x.shape[-2]}")
    inner = (x[..., 2:, :] - x[..., :-2, :]) / 2.0
    first = x[..., 1:2, :] - x[..., :1, :]
    last = x[..., -1:, :] - x[..., -2:-1, :]
    return torch.cat([first, inner, last], dim=-2) / dt


def finite_difference_acceleration(x: torch.Tensor, dt: float = 1.0) -> torch.Tensor:
    """[..., T, D] -> [..., T, D]: x[t+1] - 2 x[t] + x[t-1] (over dt^2) inside; at t = 0 and
    T - 1 the one-sided second difference of the first / last three frames (T >= 3)."""
    if x.shape[-2] < 3:
        raise ValueError(f"an acceleration needs at least 3 frames, got {x.shape[-2]}")
    inner = x[..., 2:, :] - 2.0 * x[..., 1:-1, :] + x[..., :-2, :]
    return torch.cat([inner[..., :1, :], inner, inner[..., -1:, :]], dim=-2) / (dt * dt)


def euler_lagrange_acceleration(mass: torch.Tensor, coriolis: torch.Tensor, gravity: torch.Tensor,
                                torque: torch.Tensor, q_dot: torch.Tensor) -> torch.Tensor:
    """a = M^-1 (tau - C q_dot - g): mass, coriolis [..., D, D]; gravity, torque, q_dot [..., D] -> [..., D]."""
    rhs = torque - torch.einsum("...ij,...j->...i", coriolis, q_dot) - gravity
    return torch.linalg.solve(mass, rhs.unsqueeze(-1)).squeeze(-1)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, out_dim))


class EulerLagrangeAcceleration(nn.Module):
    """Learned Euler-Lagrange acceleration estimator (module docstring).

    Args:
        num_joints: V.
        in_channels: C, the coordinates per joint (2 for COCO-17 2D poses, 3 for NTU-25).
        hidden: width of the M, C, g, tau networks.
        coupling: ``"joint"`` (a C-dof system per joint, networks shared across joints, joint
            identity given as a learned embedding) or ``"body"`` (one V*C-dof system).
        eps: added to M's diagonal (keeps it invertible).
        dt: frame interval of the velocity.
    """

    def __init__(self, num_joints: int, in_channels: int = 3, hidden: int = 64, coupling: str = "joint",
                 eps: float = 1e-3, dt: float = 1.0) -> None:
        super().__init__()
        if coupling not in ("joint", "body"):
            raise ValueError(f"coupling must be 'joint' or 'body', not {coupling!r}")
        self.coupling, self.eps, self.dt = coupling, float(eps), float(dt)
        self.num_joints, self.in_channels = int(num_joints), int(in_channels)
        dof = in_channels if coupling == "joint" else num_joints * in_channels
        self.dof = dof
        context = hidden // 4 if coupling == "joint" else 0
        self.joint_embedding = nn.Embedding(num_joints, context) if context else None
        self.mass_net = _mlp(dof + context, hidden, dof * (dof + 1) // 2)
        self.coriolis_net = _mlp(2 * dof + context, hidden, dof * dof)
        self.gravity_net = _mlp(dof + context, hidden, dof)
        self.torque_net = _mlp(2 * dof + context, hidden, dof)
        self.register_buffer("_tril", torch.tril_indices(dof, dof), persistent=False)

    def terms(self, q: torch.Tensor, q_dot: torch.Tensor, context: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(M [N, D, D], C [N, D, D], g [N, D], tau [N, D]) of states q, q_dot [N, D]; ``context``
        [N, E] is the joint embedding (joint coupling) or [N, 0]."""
        dof = self.dof
        state = torch.cat([q, context], dim=-1)
        phase = torch.cat([q, q_dot, context], dim=-1)
        entries = self.mass_net(state)
        lower = q.new_zeros(q.shape[0], dof, dof)
        lower[:, self._tril[0], self._tril[1]] = entries
        diagonal = torch.nn.functional.softplus(torch.diagonal(lower, dim1=-2, dim2=-1))
        lower = torch.tril(lower, diagonal=-1) + torch.diag_embed(diagonal)
        mass = lower @ lower.transpose(-1, -2) + self.eps * torch.eye(dof, dtype=q.dtype, device=q.device)
        coriolis = rearrange(self.coriolis_net(phase), "n (i j) -> n i j", i=dof)
        return mass, coriolis, self.gravity_net(state), self.torque_net(phase)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, M, T, V, C] positions -> accelerations [B, M, T, V, C]."""
        b, m, t, v, c = x.shape
        q = rearrange(x, "b m t v c -> b m v t c")
        q_dot = finite_difference_velocity(q, self.dt)
        if self.coupling == "joint":
            ids = torch.arange(v, device=x.device)
            context = self.joint_embedding(ids)[None, None, :, None, :].expand(b, m, v, t, -1)
            flat = lambda z: rearrange(z, "b m v t c -> (b m v t) c")  # noqa: E731
            terms = self.terms(flat(q), flat(q_dot), flat(context))
            acc = euler_lagrange_acceleration(*terms, flat(q_dot))
            return rearrange(acc, "(b m v t) c -> b m t v c", b=b, m=m, v=v)
        q_body = rearrange(q, "b m v t c -> (b m t) (v c)")
        q_dot_body = rearrange(q_dot, "b m v t c -> (b m t) (v c)")
        terms = self.terms(q_body, q_dot_body, q_body.new_zeros(q_body.shape[0], 0))
        acc = euler_lagrange_acceleration(*terms, q_dot_body)
        return rearrange(acc, "(b m t) (v c) -> b m t v c", b=b, m=m, v=v)
