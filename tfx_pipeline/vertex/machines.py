"""Which machine and accelerator requests Vertex AI custom training accepts.

`MachineSpec` checks every request here, so `run_vertex.py` refuses one that
Vertex would reject before anything is compiled, and the rehearsal's stand-in
job service checks each worker pool of a job again, as Vertex does when a job
is created. The table follows Vertex AI's "Configure compute resources for
custom training" page: each accelerator runs on certain machine types, in
certain counts; the a2, a3 and g2 types come with a fixed number of GPUs, and
TPUs name their machine type and slice.
"""

from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

# GPUs attached to an N1 machine (n1-standard-*, n1-highmem-*, n1-highcpu-*), and their counts.
_N1_GPUS = {
  'NVIDIA_TESLA_T4': (1, 2, 4),
  'NVIDIA_TESLA_P4': (1, 2, 4),
  'NVIDIA_TESLA_P100': (1, 2, 4),
  'NVIDIA_TESLA_V100': (1, 2, 4, 8),
}
# Accelerators that come with their machine type: the machine types and how many each has.
_BUILT_IN: Dict[str, Dict[str, int]] = {
  'NVIDIA_TESLA_A100': {f'a2-highgpu-{n}g': n for n in (1, 2, 4, 8)} | {'a2-megagpu-16g': 16},
  'NVIDIA_A100_80GB': {f'a2-ultragpu-{n}g': n for n in (1, 2, 4, 8)},
  'NVIDIA_H100_80GB': {f'a3-highgpu-{n}g': n for n in (1, 2, 4, 8)},
  'NVIDIA_H100_MEGA_80GB': {'a3-megagpu-8g': 8},
  'NVIDIA_L4': {
    **{f'g2-standard-{cpus}': 1 for cpus in (4, 8, 12, 16, 32)},
    'g2-standard-24': 2,
    'g2-standard-48': 4,
    'g2-standard-96': 8,
  },
  # TPU v2-8 and v3-8: Vertex's 'cloud-tpu' machine with 8 cores.
  'TPU_V2': {'cloud-tpu': 8},
  'TPU_V3': {'cloud-tpu': 8},
  'TPU_V5_LITEPOD': {'ct5lp-hightpu-1t': 1, 'ct5lp-hightpu-4t': 4, 'ct5lp-hightpu-8t': 8},
}
# The slice shape each v5e machine type is (Vertex takes only this one, or none).
_TPU_TOPOLOGY = {'ct5lp-hightpu-1t': '1x1', 'ct5lp-hightpu-4t': '2x2', 'ct5lp-hightpu-8t': '2x4'}
_N1 = re.compile(r'n1-(standard|highmem|highcpu)-\d+$')


def accelerator_types() -> Tuple[str, ...]:
  return tuple(_N1_GPUS) + tuple(_BUILT_IN)


def check(
  machine_type: str,
  accelerator_type: Optional[str] = None,
  accelerator_count: int = 0,
  tpu_topology: Optional[str] = None,
) -> None:
  """Raises ValueError, one line saying what Vertex accepts, for a request it rejects."""
  if not accelerator_type:
    if machine_type in _TPU_TOPOLOGY or machine_type == 'cloud-tpu':
      raise ValueError(f'machine type {machine_type} needs its TPU accelerator type and count.')
    for kind, machines in _BUILT_IN.items():
      if machine_type in machines and kind.startswith('NVIDIA'):
        raise ValueError(
          f'machine type {machine_type} comes with {machines[machine_type]} x {kind}: '
          'ask for them as its accelerator type and count.'
        )
    return
  if accelerator_type in _N1_GPUS:
    counts = _N1_GPUS[accelerator_type]
    if not _N1.match(machine_type):
      raise ValueError(
        f'{accelerator_type} attaches to N1 machine types (n1-standard-8, ...), not {machine_type}.'
      )
    if accelerator_count not in counts:
      raise ValueError(
        f'{accelerator_type}: Vertex attaches {_one_of(counts)} per machine, '
        f'not {accelerator_count}.'
      )
    return
  machines = _BUILT_IN.get(accelerator_type)
  if machines is None:
    raise ValueError(
      f'accelerator type {accelerator_type} is not one Vertex AI training offers '
      f'({", ".join(accelerator_types())}).'
    )
  if machine_type not in machines:
    raise ValueError(
      f'{accelerator_type} runs on machine type {_one_of(tuple(machines))}, not {machine_type}.'
    )
  if accelerator_count != machines[machine_type]:
    raise ValueError(
      f'{machine_type} has {machines[machine_type]} x {accelerator_type}: '
      f'ask for {machines[machine_type]}, not {accelerator_count}.'
    )
  expected = _TPU_TOPOLOGY.get(machine_type)
  if tpu_topology and tpu_topology != expected:
    raise ValueError(
      f'{machine_type} is a {expected or "fixed"} TPU slice, not topology {tpu_topology}.'
    )


def _one_of(values: tuple) -> str:
  values = [str(v) for v in values]
  return values[0] if len(values) == 1 else f'{", ".join(values[:-1])} or {values[-1]}'
