-- Argo CD health check for gatehouse.dev/AccessPolicy.
--
-- Healthy when the Gatehouse operator reports Ready=True for the current generation of
-- an AccessPolicy: valid, its servers and credential providers resolved,
-- and in force on the gateways that serve those servers.
-- Progressing while there is no status yet, while status is for an older metadata.generation, or
-- while Programmed/Ready are not True yet. Degraded when Accepted or ResolvedRefs is False, or
-- when a gateway rejected the configuration (Programmed=False, reason Rejected or Invalid).
--
-- Installed as resource.customizations.health.gatehouse.dev_AccessPolicy in argocd-cm
-- (../argocd-cm.yaml is generated from these files: python3 examples/gitops/argocd/gen_argocd_cm.py).

local function healthy_message(ready)
  if ready.message ~= nil and ready.message ~= "" then
    return "Ready: " .. ready.message
  end
  return "Ready: in force"
end

-- BEGIN common (identical in every gatehouse.dev_*.lua; tests/chart checks it)
local hs = {}

local function progressing(message)
  hs.status = "Progressing"
  hs.message = message
  return hs
end

local function degraded(c)
  hs.status = "Degraded"
  hs.message = c.type .. "=False (" .. (c.reason or "") .. "): " .. (c.message or "")
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil or status.conditions == nil or #status.conditions == 0 then
  return progressing("Waiting for the Gatehouse operator to report status")
end

-- Status computed for an older spec says nothing about the current one.
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  return progressing("Waiting for the Gatehouse operator to process generation " .. generation ..
    " (status is for generation " .. status.observedGeneration .. ")")
end
local conditions = {}
for _, c in ipairs(status.conditions) do
  if c.type ~= nil then
    if generation ~= nil and c.observedGeneration ~= nil and c.observedGeneration < generation then
      return progressing("Waiting for the Gatehouse operator to process generation " .. generation ..
        " (" .. c.type .. " is for generation " .. c.observedGeneration .. ")")
    end
    conditions[c.type] = c
  end
end

-- A spec the compiler refuses, or references that do not resolve (missing, not permitted), need
-- a change in Git: Degraded. A gateway rejecting (NACKing) its configuration is Degraded too.
for _, t in ipairs({"Accepted", "ResolvedRefs"}) do
  local c = conditions[t]
  if c ~= nil and c.status == "False" then
    return degraded(c)
  end
end
local programmed = conditions["Programmed"]
if programmed ~= nil and programmed.status == "False" and
    (programmed.reason == "Rejected" or programmed.reason == "Invalid") then
  return degraded(programmed)
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = healthy_message(ready)
  return hs
end

-- Not ready yet: say what is being waited for.
for _, t in ipairs({"Programmed", "Ready"}) do
  local c = conditions[t]
  if c ~= nil and c.status ~= "True" then
    return progressing("Waiting for " .. t .. " (" .. (c.reason or c.status) .. "): " .. (c.message or ""))
  end
end
return progressing("Waiting for the Ready condition")
-- END common
