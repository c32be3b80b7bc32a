"""Build script: the metadata and dependencies are in setup.cfg; this file only adds the configs
mapping explained in setup.cfg's [options] comment."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["actionfusion", "actionfusion.*"]) + ["actionfusion.configs"],
    # the top-level configs/ folder becomes the package folder actionfusion/configs in the wheel
    package_dir={"actionfusion.configs": "configs"},
    package_data={"actionfusion.configs": ["*.yaml", "**/*.yaml"]},
)
