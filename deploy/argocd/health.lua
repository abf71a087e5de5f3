-- Argo CD health check for retool-operator.dev/RetoolDeployment.
-- Install it under resource.customizations.health.retool-operator.dev_RetoolDeployment in the
-- argocd-cm ConfigMap (see docs/gitops.md). It reads the kstatus conditions the operator writes.
-- Argo CD runs it in gopher-lua with only the base, table, package and a reduced os library
-- (no string, no math): tests/unit/test_argocd_health.py runs it the same way.
local hs = {}

local function condition(obj, kind)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end

local observed = obj.status ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration >= obj.metadata.generation
local ready = condition(obj, "Ready")
local healthy = observed and ready ~= nil and ready.status == "True"

-- Paused and healthy on spec.version is Healthy; paused with a change pending is Suspended.
if obj.spec ~= nil and obj.spec.paused == true and not healthy then
  hs.status = "Suspended"
  hs.message = "spec.paused is true: the operator changes no child"
  return hs
end

if not observed then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end

local stalled = condition(obj, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end

if healthy then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end

hs.status = "Progressing"
if obj.status.upgrade ~= nil and obj.status.upgrade.step ~= nil then
  hs.message = "Upgrade " .. (obj.status.upgrade.from or "?") .. " -> " ..
    (obj.status.upgrade.to or "?") .. ": " .. obj.status.upgrade.step
elseif ready ~= nil then
  hs.message = ready.reason .. ": " .. (ready.message or "")
else
  hs.message = "Waiting for the operator"
end
return hs
