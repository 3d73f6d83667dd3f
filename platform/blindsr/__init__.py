"""blindsr: Ray-distributed training and hyperparameter search for blind super-resolution."""

__version__ = "0.1.0"
