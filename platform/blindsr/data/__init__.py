"""HR image sources, task sampling and benchmark readers (no Ray in these modules)."""
