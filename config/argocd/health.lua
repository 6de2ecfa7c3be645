-- Argo CD health of kubemdm objects, from their kstatus conditions.
-- Stalled is Degraded, Reconciling or a stale observedGeneration is
-- Progressing, Ready is Healthy. A settled object that is not Ready is
-- Degraded when it failed (a DeviceAction that did not fully succeed) and
-- Suspended when it is merely inactive (an expired, used or revoked token; a
-- device that left management).
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. obj.metadata.generation
  return hs
end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Stalled" and c.status == "True" then
    hs.status = "Degraded"
    hs.message = c.message
    return hs
  end
  if c.type == "Reconciling" and c.status == "True" then
    hs.status = "Progressing"
    hs.message = c.message
    return hs
  end
  if c.type == "Ready" then
    ready = c
  end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
elseif obj.kind == "DeviceAction" then
  -- Every finished action that did not fully succeed failed somewhere.
  hs.status = "Degraded"
  hs.message = ready.message
else
  hs.status = "Suspended"
  hs.message = ready.message
end
return hs
