"""Forgets the gradients a finished trial left in TensorFlow's process-wide gradient registry.

`modules.tuning.hooks.SearchHooks` notes the registry at each trial's start and
calls `forget_since` at its end, in the Tuner's process and in every worker of
a parallel search.

Why: Keras 3's TensorFlow optimizer sums gradients through `tf.distribute`'s
all-reduce, which is a `tf.custom_gradient`. Traced into a `tf.function` (every
trial's train step), a custom gradient is registered under a new name,
`CustomGradient-<uid>`, in TensorFlow's global registry of gradient functions;
nothing ever removes it, and its closure holds the traced graph: ops, tensors,
the metrics' cond branches. `keras.backend.clear_session()`, which keras-tuner
calls before each trial, does not reach it, so every trial's train step stayed
alive: 22 graphs and ~5.6 MB a trial, 3 GB over 500 trials (docs/STACK.md).
Once the trial is over its graphs are never differentiated again (a new trial
traces anew, under new names), so its entries can go.
"""

from __future__ import annotations

from typing import FrozenSet

_PREFIX = 'CustomGradient-'


def _registry() -> dict:
  from tensorflow.python.framework import ops

  # `ops.RegisterGradient`'s registry: name -> {'type': function, 'location': ...}.
  return ops._gradient_registry._registry


def names() -> FrozenSet[str]:
  """The custom gradients registered so far."""
  return frozenset(name for name in _registry() if name.startswith(_PREFIX))


def forget_since(before: FrozenSet[str]) -> int:
  """Removes the custom gradients registered after `before` was taken; how many."""
  registry = _registry()
  new = [name for name in list(registry) if name.startswith(_PREFIX) and name not in before]
  for name in new:
    registry.pop(name, None)
  return len(new)
