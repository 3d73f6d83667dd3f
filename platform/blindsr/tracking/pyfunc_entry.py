"""MLflow "model from code" entry: what ``mlflow.pyfunc.load_model`` runs for a blindsr model (see pyfunc.py)."""

from mlflow.models import set_model

from blindsr.tracking.pyfunc import SRModel

set_model(SRModel())
