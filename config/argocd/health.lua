-- Argo CD health of kubemdm objects. It gives the same answer as kstatus
-- (sigs.k8s.io/cli-utils status.Compute), which kubectl wait and Flux use, so
-- every GitOps tool agrees: InProgress is Progressing, Current is Healthy,
-- Failed is Degraded. A kubemdm object that has finished is Current (Ready)
-- or Failed (Stalled), never left Progressing.
local hs = {}
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Resource scheduled for deletion"
  return hs
end
-- A new object's status defaults to observedGeneration -1, so it is
-- Progressing until its controller has observed it.
if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status ~= nil
    and obj.status.observedGeneration ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. obj.metadata.generation
  return hs
end
local conditions = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  conditions = obj.status.conditions
end
for _, c in ipairs(conditions) do
  if c.type == "Reconciling" and c.status == "True" then
    hs.status = "Progressing"
    hs.message = c.message
    return hs
  end
  if c.type == "Stalled" and c.status == "True" then
    hs.status = "Degraded"
    hs.message = c.message
    return hs
  end
end
for _, c in ipairs(conditions) do
  if c.type == "Ready" then
    if c.status == "True" then
      hs.status = "Healthy"
    else
      hs.status = "Progressing"
    end
    hs.message = c.message
    return hs
  end
end
hs.status = "Healthy"
hs.message = "Resource is current"
return hs
