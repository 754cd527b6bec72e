"""Test helpers: hand-weighted toy models whose gates and pathways are known exactly,
hook-leak checks, and real architectures with locally built tasks (a ResNet-18 in
torchvision's layout on enlarged digits under task cues; small BERT / OPT models with ReLU
feed-forwards on a multi-task sequence task). Public so that users can test their own
integrations the same way."""

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
from ._reln_nets import ReLNNet, biased_leaky_net  # noqa: E402

__all__ += ["ReLNNet", "biased_leaky_net"]

# known answers for deep, scaled, unbalanced, convolutional and leaky networks (issue 11)
from ._known_answers import (  # noqa: E402
    KnownNet,
    channel_net,
    deep_net,
    leaky_net,
    near_parallel_net,
    rare_unit_net,
    scaled_pathway_net,
    unbalanced_net,
)

__all__ += ["KnownNet", "channel_net", "deep_net", "leaky_net", "near_parallel_net", "rare_unit_net",
            "scaled_pathway_net", "unbalanced_net"]

# real architectures and locally built tasks for them (issue: ResNets and transformers end to end)
from ._image_task import DIGIT_RULES, FRAME_COLOURS, ImageTask, accuracy, digit_images, fit_classifier  # noqa: E402
from ._resnet import BasicBlock, ResNet, resnet18  # noqa: E402
from ._sequence_task import (  # noqa: E402
    IGNORE_LABEL,
    SEQUENCE_RULES,
    SequenceTask,
    bert_token_classifier,
    fit_token_model,
    multitask_sequences,
    opt_token_model,
    token_accuracy,
    token_logits,
)

__all__ += [
    "DIGIT_RULES", "FRAME_COLOURS", "ImageTask", "accuracy", "digit_images", "fit_classifier",
    "BasicBlock", "ResNet", "resnet18",
    "IGNORE_LABEL", "SEQUENCE_RULES", "SequenceTask", "bert_token_classifier", "fit_token_model",
    "multitask_sequences", "opt_token_model", "token_accuracy", "token_logits",
]
