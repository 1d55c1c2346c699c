-- modelpilot action "abort": the operator reads the annotation once and removes it.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["modelpilot.io/action"] = "abort"
return obj
