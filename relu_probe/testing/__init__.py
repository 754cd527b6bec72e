"""Test helpers: hand-weighted toy models whose gates and pathways are known exactly, and
hook-leak checks. Public so that users can test their own integrations the same way."""

from __future__ import annotations

from ._hooks import assert_no_hooks, count_hooks
from ._toy_models import (
    A_WEIGHTS,
    B_WEIGHTS,
    FUNCTIONAL_STYLES,
    FailingNet,
    FunctionalReLUNet,
    InplaceReLUNet,
    LeakyReLUNet,
    ModuleListNet,
    NestedMixedNet,
    NoReLUNet,
    ReusedReLUNet,
    SequentialReLUNet,
    ToyConvNet,
    ToySequenceNet,
    toy_inputs,
)

__all__ = [
    "assert_no_hooks",
    "count_hooks",
    "A_WEIGHTS",
    "B_WEIGHTS",
    "FUNCTIONAL_STYLES",
    "FailingNet",
    "FunctionalReLUNet",
    "InplaceReLUNet",
    "LeakyReLUNet",
    "ModuleListNet",
    "NestedMixedNet",
    "NoReLUNet",
    "ReusedReLUNet",
    "SequentialReLUNet",
    "ToyConvNet",
    "ToySequenceNet",
    "toy_inputs",
]
from ._pathway_nets import PathwayNet, k_minus_one_net, modular_net, pathway_task, shared_net  # noqa: E402

__all__ += ["PathwayNet", "k_minus_one_net", "modular_net", "pathway_task", "shared_net"]
