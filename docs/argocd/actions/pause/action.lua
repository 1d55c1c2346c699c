-- modelpilot action "pause": spec.paused freezes a canary where it is (and the next one at its start).
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.paused = true
return obj
