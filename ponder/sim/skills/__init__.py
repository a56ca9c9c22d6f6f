"""Prompt families of the simulated model beyond plain game24 answers. Every module here
is imported by :mod:`ponder.sim.model` and registers its skills with
:func:`ponder.sim.skill.register_skill` at import time."""
