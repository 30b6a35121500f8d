"""The core (utils/, neuron_receivers/) knows no model and no world: the demo plugs in through the config."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = ("utils", "neuron_receivers")


def core_modules() -> list[Path]:
    return sorted(path for folder in CORE for path in (REPO / folder).rglob("*.py"))


def imported_names(tree: ast.AST) -> list[str]:
    """Every module an ``import`` or ``from ... import`` names, at any depth (function-level imports included)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (of the module, a class or a function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def test_no_core_module_imports_the_demo():
    assert len(core_modules()) > 10
    for path in core_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        demo = [name for name in imported_names(tree) if name == "demo" or name.startswith("demo.")]
        assert not demo, f"{path.relative_to(REPO)} imports {demo}"


def test_no_core_code_names_the_demo_model():
    for path in core_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = docstrings(tree)
        named = [node.value for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip and "demo/model" in node.value]
        assert not named, f"{path.relative_to(REPO)} special-cases {named}"


def test_the_demo_plugs_in_through_the_config():
    """The shipped config names the demo world's concept source for demo/model; the core imports it only at run time."""
    from utils.concepts import ConceptSource, load_concept_source
    from utils.config import build_parser, resolve_config

    config = resolve_config(build_parser("t").parse_args(["--model_id", "demo/model"]))
    assert config["own_concepts_only"] is True and isinstance(load_concept_source(config["concept_source"]), ConceptSource)
    sd = resolve_config(build_parser("t").parse_args(["--model_id", "CompVis/stable-diffusion-v1-4"]))
    assert sd["concept_source"] is None and sd["own_concepts_only"] is False


def test_hook_variant_names_are_one_table_and_load_without_torch():
    code = ("import sys\nimport neuron_receivers, neuron_receivers.hook_variants as h, utils.config as c\n"
            "assert c.HOOK_MODULES == tuple(h.HOOK_VARIANTS)\nprint('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
