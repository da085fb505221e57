"""Run a module as on the bare GPU box that `make gpu-check` meets (torch, Triton,
torchvision, pandas, pyyaml; nothing else this project installs): the packages it lacks
import as absent. ``python tests/bare_gpu_box.py MODULE ARGS...``."""

import importlib.abc
import importlib.machinery
import runpy
import sys

ABSENT = {"submitit", "nvidia", "scipy", "hypothesis", "tensorboard", "matplotlib", "tqdm", "sklearn", "pytest",
          "psutil"}


class _Absent(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        raise ModuleNotFoundError(f"No module named {spec.name!r} (absent on the bare GPU box)", name=spec.name)

    def exec_module(self, module: object) -> None:
        pass


class _Finder(importlib.abc.MetaPathFinder):
    # a spec without an origin: torch's optional-module probes (find_spec) pass over it, an import fails
    def find_spec(self, name: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(name, _Absent(), origin=None) if name.split(".")[0] in ABSENT else None


if __name__ == "__main__":
    sys.meta_path.insert(0, _Finder())
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
