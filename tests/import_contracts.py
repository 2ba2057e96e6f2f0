"""A contract import-linter has no built-in type for: no module of the package imports itself back through others.

import-linter's `acyclic_siblings` looks at packages; a circle between single modules of different packages (the
suite's configuration types calling a registry that reads them) passes it. This contract finds every strongly
connected group of modules in the import graph (imports inside functions count; those only for type checking do
not, when the configuration excludes them) and names each circle it would take to close.
"""

from __future__ import annotations

import grimp
from importlinter.application import output
from importlinter.domain.contract import Contract, ContractCheck


def _circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The groups of two or more modules that import one another, each sorted (Tarjan's algorithm, iterative)."""
    imports = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in sorted(graph.modules)}
    order: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in imports:
        if root in order:
            continue
        work = [(root, iter(imports[root]))]
        order[root] = lowest[root] = len(order)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, pending = work[-1]
            step = next(pending, None)
            if step is not None:
                if step not in order:
                    order[step] = lowest[step] = len(order)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(imports.get(step, []))))
                elif step in on_stack:
                    lowest[module] = min(lowest[module], order[step])
                continue
            work.pop()
            if work:
                lowest[work[-1][0]] = min(lowest[work[-1][0]], lowest[module])
            if lowest[module] == order[module]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == module:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return sorted(found)


class AcyclicModulesContract(Contract):
    type_name = "acyclic_modules"

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        circles = _circles(graph)
        chains = [graph.find_shortest_chain(group[0], group[1]) or () for group in circles]
        back = [graph.find_shortest_chain(group[1], group[0]) or () for group in circles]
        return ContractCheck(kept=not circles, metadata={"circles": circles, "chains": list(zip(chains, back))})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for group, (there, back) in zip(check.metadata["circles"], check.metadata["chains"]):
            output.print_error(f"modules that import one another: {', '.join(group)}", bold=True)
            output.print(f"  {' -> '.join(there)}")
            output.print(f"  {' -> '.join(back)}")
            output.new_line()
