-- Which modelpilot actions make sense now (argocd-cm key
-- resource.customizations.actions.modelpilot.io_ModelDeployment, discovery.lua).
-- The same rules as `kubectl modelpilot` (operator/modelpilot/cli/actions.py).
local actions = {}
local canary = {}
if obj.status ~= nil and obj.status.canary ~= nil then
  canary = obj.status.canary
end
local state = canary.state
local paused = obj.spec ~= nil and obj.spec.paused == true
-- A concluded experiment that waits for a human (reason ExperimentConcluded) is still Progressing:
-- promote and abort are offered; one rolled back by its onConclusion is RolledBack: retry runs it again.
local running = state == "Progressing" or state == "Paused"

actions["promote"] = {["disabled"] = not running, ["iconClass"] = "fa fa-fw fa-forward"}
actions["abort"] = {["disabled"] = not running, ["iconClass"] = "fa fa-fw fa-times-circle"}
actions["retry"] = {["disabled"] = state == nil or state == "Promoting", ["iconClass"] = "fa fa-fw fa-redo-alt"}
actions["pause"] = {["disabled"] = paused or state == "Paused" or state == "Promoting",
                    ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = not (paused or state == "Paused"), ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
