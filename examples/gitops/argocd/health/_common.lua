-- The shared core of the Gatehouse health checks. Argo CD runs each resource.customizations.health
-- script on its own (no shared modules), so gen_argocd_cm.py appends this file to every
-- gatehouse.dev_<Kind>.lua, which defines only `healthy_message(ready)`.
--
-- BEGIN common
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
