"""``hf-elmo quickstart``: the package's main job on data that ships with every Python.

Each stage is a module with a ``run(...)`` that returns a dict of figures; ``hf_elmo.commands.quickstart`` runs the
stages in order and prints their figures.
"""
