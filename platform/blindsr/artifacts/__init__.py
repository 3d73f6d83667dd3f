"""The trained model's one home: the checkpoint folder (``checkpoint``), the registry's model format
(``registered``) and the official codes' checkpoint layouts (``official``). No Ray, no MLflow: training, tracking,
inference, export and the jobs read and write models through it."""
