"""Checks that no hook or function mode outlives a recording."""

from __future__ import annotations

from torch import nn

_HOOK_DICTS = (
    "_forward_pre_hooks",
    "_forward_hooks",
    "_backward_pre_hooks",
    "_backward_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def count_hooks(model: nn.Module) -> dict[str, int]:
    """Count the hooks registered on *model* and all its submodules.

    Returns
    -------
    dict
        ``{"module.path:hook_dict": n}`` for every non-empty hook dict, plus
        ``"function_modes"``: relu_probe function modes still active on the torch stack.
    """
    counts: dict[str, int] = {}
    for path, module in model.named_modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks:
                counts[f"{path or '<root>'}:{attr}"] = len(hooks)
    from torch.overrides import _get_current_function_mode_stack

    modes = [m for m in _get_current_function_mode_stack() if type(m).__module__.startswith("relu_probe")]
    if modes:
        counts["function_modes"] = len(modes)
    return counts


def assert_no_hooks(model: nn.Module) -> None:
    """Raise ``AssertionError`` if any hook is registered anywhere in *model*.

    Checks forward (pre-)hooks, backward hooks and state-dict hooks of every submodule, and
    that no relu_probe ``TorchFunctionMode`` is still active. Use it after recording a model
    that had no hooks of its own.
    """
    counts = count_hooks(model)
    if counts:
        listed = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        raise AssertionError(f"hooks left on the model: {listed}")
