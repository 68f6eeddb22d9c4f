"""Every registered op is gradient-checked here, on every backend.

Each test module declares ``GRADCHECK_CASES``: a dict from an op's class name (its key in
``minigrad.REGISTRY``) to a list of case builders ``case(backend) -> (fn, inputs)``, with
float64 inputs. This module gathers them from all test modules, runs ``gradcheck`` on each
(random upstream gradient), and fails if any registered op has no case: a new op cannot slip
in unchecked.
"""

import importlib
import pathlib

import pytest

import layers  # noqa: F401  (registers the layer-level ops)
import minigrad

_HERE = pathlib.Path(__file__).parent


def _collect_cases():
    cases = {}
    for path in sorted(_HERE.glob("test_*.py")):
        module = importlib.import_module(path.stem)
        for op_name, builders in getattr(module, "GRADCHECK_CASES", {}).items():
            cases.setdefault(op_name, []).extend(builders)
    return cases


CASES = _collect_cases()


def _import_all_ops():
    """Import every module of minigrad and layers so that all ops are registered."""
    import pkgutil
    for package in (minigrad, layers):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(info.name)


def test_every_registered_op_has_a_gradcheck_case():
    _import_all_ops()
    missing = sorted(set(minigrad.REGISTRY) - set(CASES))
    assert not missing, f"ops without a gradcheck case in any GRADCHECK_CASES: {missing}"


def test_every_case_names_a_registered_op():
    _import_all_ops()
    unknown = sorted(set(CASES) - set(minigrad.REGISTRY))
    assert not unknown, f"GRADCHECK_CASES name ops that are not registered: {unknown}"


@pytest.mark.parametrize("op_name,index", [
    (name, i) for name in sorted(CASES) for i in range(len(CASES[name]))])
def test_grad_matches_finite_difference(op_name, index, backend):
    fn, inputs = CASES[op_name][index](backend)
    assert minigrad.gradcheck(fn, inputs)
