"""`modelpilot optimize`: convert an sklearn or XGBoost model to ONNX, optionally quantize it to
int8, and keep the result only when it predicts like the original on validation data (docs/optimize.md).

Modules: `source` loads the original with the runtime's loaders, `data` reads the validation rows,
`convert` and `quantize` produce the ONNX candidates, `measure` runs every model on the rows,
`validate` (pure) compares predictions and decides on a refusal, `report` (pure) builds report.json
and its table, `command` is the subcommand. Only `command` is imported by the CLI; the rest needs
the `[server]` extra and is imported inside the command.
"""
