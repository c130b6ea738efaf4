"""Export a trained actor as an rldata policy checkpoint (``RUN/policy.pt``).

Every actor the registry builds has an MLP trunk whose first ``action_dim`` outputs,
squashed into the action box, are its deterministic action (a tanh-Gaussian's mode is
its squashed mean; :class:`~rldata.trainers.networks.BoundedTanh` squashes the same
way). The policy-checkpoint format of :mod:`rldata.collectors.policies` is exactly that
MLP plus the squash, so the export copies the trunk's weights (keeping the mean's rows
of a Gaussian head) and any observation normalization. The result loads with
``weights_only=True`` and acts without knowing which algorithm trained it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from torch import nn

from rldata.collectors.policies import mlp_policy, save_policy
from rldata.specs import Categorical, Composite, Unbounded
from rldata.trainers import files
from rldata.trainers.networks import EnvSpecs, actor_trunk


def export_policy(
    actor: nn.Module,
    specs: EnvSpecs,
    hidden: list[int],
    obs_norm: dict[str, list[float]] | None,
    path: Path,
) -> None:
    """Write ``actor``'s deterministic policy to ``path`` (atomically: temp file, rename).

    A Dict observation's policy reads the env's leaves and concatenates them in the order
    the run trained on (``specs.obs_leaves``).
    """
    if specs.obs_leaves:
        leaves = Composite({})
        for leaf in specs.obs_leaves:  # nested keys too: ("goal", "xy")
            leaves[leaf.key] = (
                Categorical(leaf.categories, leaf.shape, dtype=leaf.dtype)
                if leaf.categories
                else Unbounded(leaf.shape, dtype=leaf.dtype)
            )
        observation: Any = leaves
        keys: list[Any] | None = [leaf.key for leaf in specs.obs_leaves]
    else:
        observation, keys = Unbounded((specs.obs_dim,)), None
    policy = mlp_policy(
        observation,
        specs.action_spec,
        num_cells=hidden,
        activation="ReLU",
        obs_norm=obs_norm,
        obs_keys=keys,
    )
    target = actor_trunk(policy)
    wanted = target.state_dict()
    state = {}
    for key, value in actor_trunk(actor).state_dict().items():
        value = value.detach().cpu()
        state[key] = value[: wanted[key].shape[0]] if value.shape != wanted[key].shape else value
    target.load_state_dict(state)
    buf = io.BytesIO()  # torch's file writer says a full disk without the path
    save_policy(policy, buf)
    files.write_bytes(path, buf.getbuffer())
