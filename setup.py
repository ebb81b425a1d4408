"""Package discovery only (the rest is pyproject.toml): every `pipeline*` package, plus
`pipeline.ci_templates`, which is the top-level `ci-templates/` directory (Jinja2 templates
of `release ci generate`, mapped in [tool.setuptools.package-dir]). pyproject.toml's
`packages.find` cannot add a package that lives outside the package tree."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["pipeline", "pipeline.*"]), "pipeline.ci_templates"])
