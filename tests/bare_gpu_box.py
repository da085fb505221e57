"""Run a module as on the bare GPU box that `make gpu-check` meets (torch, Triton,
torchvision, pandas, pyyaml; nothing else this project installs): the packages it lacks are
absent (None in ``sys.modules``: ``import`` raises ModuleNotFoundError, ``find_spec`` gives
None, as for a package that is not installed). ``python tests/bare_gpu_box.py MODULE ARGS...``."""

import runpy
import sys

# nvidia.dali, not nvidia: pip's torch keeps its CUDA libraries under nvidia.* on the box too
ABSENT = ("submitit", "nvidia.dali", "scipy", "hypothesis", "tensorboard", "matplotlib", "tqdm", "sklearn", "pytest",
          "psutil")

if __name__ == "__main__":
    sys.modules.update(dict.fromkeys(ABSENT))
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
