"""nbval runs the workshop's solutions (03_workshop_solutions.ipynb), not its blanks: 03_workshop.ipynb stops at
its first check by design. tests/integration/test_workshop_notebooks.py executes the blanks and asserts every hint."""

collect_ignore = ["03_workshop.ipynb"]
