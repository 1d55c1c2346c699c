-- Argo CD health of a modelpilot.io/v1alpha1 ModelDeployment
-- (argocd-cm key resource.customizations.health.modelpilot.io_ModelDeployment).
-- Argo CD's sandbox has only the base and table libraries: no string.* or math.* here.
local hs = {}

local function text(value, default)
  if value == nil then
    return default
  end
  return tostring(value)
end

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- Where a Progressing canary stands: its stage (status.canary.stage, absent until Ready) and traffic.
local function where(canary, rollout)
  local version = text(canary.version, "?")
  if canary.stage == "shadow" then
    local shadow = (rollout.canary or {}).shadow or {}
    return "canary " .. version .. " in stage shadow (" .. text(shadow.percent, "100") .. "% mirrored)"
  end
  if canary.stage == "segment" then
    return "canary " .. version .. " in stage segment (matching requests only)"
  end
  if canary.stage == "experiment" then
    return "canary " .. version .. " in stage experiment (" .. text(canary.weight, "?") .. "% split)"
  end
  return "canary " .. version .. " at " .. text(canary.weight, "0") .. "%"
end

local function describe(c)
  if c.message == nil or c.message == "" then
    return text(c.reason, "")
  end
  return text(c.reason, "") .. ": " .. c.message
end

-- Active drift (DataDrift / ConceptDrift True), reported beside any health: drift never fails the app.
local function drift(status)
  local found = ""
  for _, kind in ipairs({"DataDrift", "ConceptDrift"}) do
    local c = condition(status, kind)
    if c ~= nil and c.status == "True" then
      found = found .. "; drift: " .. kind .. ": " .. text(c.message, text(c.reason, ""))
    end
  end
  return found
end

-- The health by the rollout's state, without drift.
local function assess()
  local status = obj.status
  local generation = obj.metadata.generation
  if status == nil or status.observedGeneration == nil or status.conditions == nil then
    hs.status = "Progressing"
    hs.message = "waiting for the operator to reconcile this ModelDeployment"
    return hs
  end
  if generation ~= nil and status.observedGeneration < generation then
    hs.status = "Progressing"
    hs.message = "waiting for the operator: generation " .. text(generation, "?") ..
      " not observed yet (status is of " .. text(status.observedGeneration, "?") .. ")"
    return hs
  end

  local spec = obj.spec or {}
  local canary = status.canary or {}
  local experiment = canary.experiment or {}
  local ready = condition(status, "Ready")
  local degraded = condition(status, "Degraded")
  -- An experiment whose onConclusion rolled it back ended as planned: not a failure.
  local concluded_back = canary.state == "RolledBack" and canary.reason == "ExperimentConcluded"

  -- A rollback, an invalid spec: the operator will not go on by itself.
  local planned = concluded_back and degraded ~= nil and degraded.reason == "ExperimentConcluded"
  if degraded ~= nil and degraded.status == "True" and not planned then
    hs.status = "Degraded"
    hs.message = describe(degraded)
    return hs
  end

  -- Held until someone acts: a paused canary (by spec.paused or a policy), or spec.paused itself.
  if canary.state == "Paused" then
    hs.status = "Suspended"
    hs.message = text(canary.message, "canary " .. text(canary.version, "?") .. " paused") ..
      " (resume, promote or abort)"
    return hs
  end
  -- spec.paused with no canary in flight and the stable version serving is Healthy: nothing is held
  -- yet, and a sync wave waiting on this object must be able to finish.
  local in_flight = canary.state == "Progressing" or canary.state == "Promoting"
  if spec.paused == true and not in_flight and ready ~= nil and ready.status == "True" then
    hs.status = "Healthy"
    hs.message = "spec.paused: " .. text(ready.message, "serving") .. "; a new version will wait at its first step"
    return hs
  end
  if spec.paused == true and canary.state ~= "Promoting" then
    hs.status = "Suspended"
    hs.message = "spec.paused: " .. describe(ready or {reason = "Paused"})
    return hs
  end

  if concluded_back then
    hs.status = "Healthy"
    hs.message = "experiment concluded: " .. text(experiment.verdict, "?") .. ", rolled back to stable"
    return hs
  end

  -- A final experiment verdict that waits for a human (onConclusion Report, or no clear verdict
  -- under Promote): the split stays until a promote or abort action.
  if canary.state == "Progressing" and experiment.final == true and
      (canary.reason == "ExperimentConcluded" or canary.stage == "experiment") then
    hs.status = "Suspended"
    hs.message = "experiment " .. text(canary.version, "?") .. " concluded: " .. text(experiment.verdict, "?") ..
      "; the " .. text(canary.weight, "?") .. "% split stays until a promote or abort action"
    if canary.reason ~= "ExperimentConcluded" and canary.message ~= nil and canary.message ~= "" then
      hs.message = hs.message .. " (last: " .. canary.message .. ")"
    end
    return hs
  end

  if ready ~= nil and ready.status == "True" then
    hs.status = "Healthy"
    hs.message = text(ready.message, "")
    return hs
  end

  if canary.state == "Progressing" or canary.state == "Promoting" then
    hs.status = "Progressing"
    local what = where(canary, spec.rollout or {})
    if canary.state == "Promoting" then
      what = "promoting " .. text(canary.version, "?")
    end
    if canary.message ~= nil and canary.message ~= "" then
      what = what .. ": " .. canary.message
    end
    hs.message = what
    return hs
  end

  hs.status = "Progressing"
  if ready ~= nil then
    hs.message = describe(ready)
  else
    hs.message = "waiting for the operator to report Ready"
  end
  return hs
end

local health = assess()
if obj.status ~= nil then
  health.message = text(health.message, "") .. drift(obj.status)
end
return health
