-- Argo CD health check for gatehouse.dev/McpGateway.
--
-- Healthy when the Gatehouse operator reports Ready=True for the current generation of
-- an McpGateway: its gateway Deployment runs and every replica applied the
-- current configuration.
-- Progressing while there is no status yet, while status is for an older metadata.generation, or
-- while Programmed/Ready are not True yet. Degraded when Accepted or ResolvedRefs is False, or
-- when a gateway rejected the configuration (Programmed=False, reason Rejected or Invalid).
--
-- Installed as resource.customizations.health.gatehouse.dev_McpGateway in argocd-cm
-- (../argocd-cm.yaml is generated from this file followed by _common.lua:
-- python3 examples/gitops/argocd/gen_argocd_cm.py).

local function healthy_message(ready)
  local message = "Ready"
  if obj.status.readyReplicas ~= nil then
    local desired = 1
    if obj.spec ~= nil and obj.spec.replicas ~= nil then
      desired = obj.spec.replicas
    end
    message = message .. ": " .. obj.status.readyReplicas .. "/" .. desired .. " replicas"
  end
  if obj.status.configVersion ~= nil then
    message = message .. ", config " .. string.sub(obj.status.configVersion, 1, 12)
  end
  return message
end
