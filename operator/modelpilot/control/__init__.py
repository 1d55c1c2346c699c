"""The reconcile of a ModelDeployment: observe (cache) -> analyse -> plan (pure) -> execute."""
