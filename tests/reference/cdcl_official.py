# Ours (not official code): loads the verbatim official CdCL files (cdcl_official_*.py, MIT, see LICENSE_CdCL)
# under the module names they import each other by (model.common, moco.moco), for the CdCL tests only. Two
# stand-ins replace what a CPU test environment lacks, and are removed from sys.modules again after loading:
#   timm.models.layers.DropPath: CdCL builds it only when drop_path > 0, which it never sets (it raises if built);
#   utils.dist.get_rank: the official distributed helper, rank 0 (a single process).
# The official InfoNCE puts its labels on CUDA with .cuda(); a CPU test patches torch.Tensor.cuda around its call.
import importlib.util
import sys
import types
from pathlib import Path

HERE = Path(__file__).parent


class DropPath:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("stand-in for timm's DropPath: CdCL's official code builds it only for drop_path > 0")


def _package(name, **attrs):
    module = types.ModuleType(name)
    module.__path__ = []
    module.__dict__.update(attrs)
    return module


def _load():
    names = ["timm", "timm.models", "timm.models.layers", "utils", "utils.dist", "model", "model.common", "moco",
             "moco.moco", "model.blindsr", "loss", "loss.infoNCE"]
    saved = {n: sys.modules[n] for n in names if n in sys.modules}
    stubs = {
        "timm": _package("timm"),
        "timm.models": _package("timm.models"),
        "timm.models.layers": _package("timm.models.layers", DropPath=DropPath),
        "utils": _package("utils"),
        "utils.dist": _package("utils.dist", get_rank=lambda: 0),
        "model": _package("model"),
        "moco": _package("moco"),
        "loss": _package("loss"),
    }
    loaded = {}
    try:
        sys.modules.update(stubs)
        for name, file in [("model.common", "cdcl_official_common.py"), ("moco.moco", "cdcl_official_moco.py"),
                           ("model.blindsr", "cdcl_official_blindsr.py"), ("loss.infoNCE", "cdcl_official_infonce.py")]:
            spec = importlib.util.spec_from_file_location(name, HERE / file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            parent, _, child = name.rpartition(".")
            setattr(sys.modules[parent], child, module)
            spec.loader.exec_module(module)
            loaded[name] = module
    finally:
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)
    return loaded


_modules = _load()
BlindSR = _modules["model.blindsr"].BlindSR
FastMoCo = _modules["moco.moco"].FastMoCo
InfoNCE = _modules["loss.infoNCE"].InfoNCE
