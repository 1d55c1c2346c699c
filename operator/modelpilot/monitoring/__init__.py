"""Data and concept drift monitoring: the reference profile, window counts, scores and feedback
(pure: numpy and scipy only), shared by `modelpilot profile`, the runtime and the operator."""
