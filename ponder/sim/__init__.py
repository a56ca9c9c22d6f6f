"""The simulated model, so the whole service runs offline: a stand-in for an LLM
(:mod:`ponder.sim.model`, provider ``sim``) and for a process reward model
(:mod:`ponder.sim.reward`, provider ``sim-reward``), with the prompt families it knows
beyond the Game of 24 in :mod:`ponder.sim.skills`. Both register with
:mod:`ponder.llm.registry`. Unlike :mod:`ponder.llm`, this package may use the problem
families and verifiers (to read prompts back and check its own work). Its HTTP face,
``ponder sim serve``, is :mod:`api.simulator` (this package imports no web framework)."""
