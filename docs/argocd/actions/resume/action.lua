-- modelpilot action "resume": spec.paused back to false and, when a policy (onInconclusive or
-- onProviderError: Pause) paused the canary, also the one-shot "resume" action, because such a
-- pause does not end with spec.paused.
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.paused = false
local canary = nil
if obj.status ~= nil then
  canary = obj.status.canary
end
if canary ~= nil and canary.state == "Paused" and
    (canary.pausedBy == "inconclusive" or canary.pausedBy == "provider-error") then
  if obj.metadata.annotations == nil then
    obj.metadata.annotations = {}
  end
  obj.metadata.annotations["modelpilot.io/action"] = "resume"
end
return obj
