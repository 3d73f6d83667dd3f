"""Training side: pure optimisation steps (``step``), optimisers (``optim``), gradient averaging
(``distributed``); ``loop`` is the only module that imports ``ray.train``."""
