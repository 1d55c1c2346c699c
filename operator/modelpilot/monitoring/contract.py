"""The drift metrics contract between the runtime and the operator (docs/monitoring.md), in one place.

The runtime exports these gauges at scrape time, with its usual constant labels
(model_deployment, model, version, revision, track; Prometheus adds namespace and pod); the
operator reads them. Scores are computed per pod over the pod's own sliding window; the operator
pools the pods of a track (a rows-weighted mean of PSI, the smallest p-value).
"""

from __future__ import annotations

# The reference profile: written by `modelpilot profile`, found in the model directory.
PROFILE_FILE = "profile.json"
PROFILE_SCHEMA = "modelpilot.io/profile/v1"

# Pod environment the operator sets from spec.monitoring.drift (what the runtime must know).
ENV_ENABLED = "MODELPILOT_DRIFT"  # "false" turns drift monitoring and feedback off
ENV_WINDOW = "MODELPILOT_DRIFT_WINDOW"  # seconds of the sliding window (default 3600)
ENV_MAX_FEATURES = "MODELPILOT_DRIFT_MAX_FEATURES"  # features exported one by one (default 50)

DEFAULT_WINDOW_SECONDS = 3600
DEFAULT_MAX_FEATURES = 50
# Features beyond maxFeatures are summarised: how many are at or above this PSI (the conventional
# "significant shift" level), and the largest PSI among them.
SUMMARY_PSI = 0.2

# Label names.
FEATURE = "feature"
BIN = "bin"
DISTRIBUTION = "distribution"  # "reference" | "live"
RESULT = "result"  # feedback outcome: joined | unknown | duplicate | invalid

# Gauges (per pod), computed over the pod's window.
PROFILE_LOADED = "modelpilot_drift_profile_loaded"  # 1 with a profile, 0 without
WINDOW_ROWS = "modelpilot_drift_window_rows"  # input rows counted in the window
FEATURE_PSI = "modelpilot_drift_feature_psi"  # {feature}
FEATURE_P_VALUE = "modelpilot_drift_feature_p_value"  # {feature}: chi-square goodness of fit
FEATURE_BIN_RATIO = "modelpilot_drift_feature_bin_ratio"  # {feature, bin, distribution}
UNEXPORTED_FEATURES = "modelpilot_drift_unexported_features"  # features past maxFeatures
UNEXPORTED_PSI_MAX = "modelpilot_drift_unexported_psi_max"
UNEXPORTED_OVER = "modelpilot_drift_unexported_over_threshold"  # of them, PSI >= SUMMARY_PSI
PREDICTION_ROWS = "modelpilot_drift_prediction_window_rows"
PREDICTION_PSI = "modelpilot_drift_prediction_psi"
PREDICTION_P_VALUE = "modelpilot_drift_prediction_p_value"
PREDICTION_BIN_RATIO = "modelpilot_drift_prediction_bin_ratio"  # {bin, distribution}
# Concept drift, from feedback joined to the pod's recent predictions.
FEEDBACK_ROWS = "modelpilot_feedback_window_rows"  # labelled rows in the window
FEEDBACK_ACCURACY = "modelpilot_feedback_accuracy"  # classification: share of correct rows
FEEDBACK_ERROR = "modelpilot_feedback_error"  # regression: mean absolute error
REFERENCE_ACCURACY = "modelpilot_feedback_reference_accuracy"  # from the profile, when it has one
REFERENCE_ERROR = "modelpilot_feedback_reference_error"
FEEDBACK_TOTAL = "modelpilot_feedback_total"  # counter {result}
