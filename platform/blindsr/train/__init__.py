"""Training side: pure optimisation steps (``step``), the loop core (``runner``), optimisers (``optim``), gradient
averaging (``distributed``); ``launch``, ``worker`` and ``progress`` are the only modules that import Ray."""
