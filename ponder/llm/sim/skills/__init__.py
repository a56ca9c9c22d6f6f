"""Prompt families of the simulated model beyond plain game24 answers. Every module here
is imported by :mod:`ponder.llm.sim.model` and registers its skills with
``register_skill`` at import time."""
