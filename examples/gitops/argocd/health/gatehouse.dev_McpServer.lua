-- Argo CD health check for gatehouse.dev/McpServer.
--
-- Healthy when the Gatehouse operator reports Ready=True for the current generation of
-- an McpServer: attached to its gateway (and, for `workload`, running with
-- its sidecar), with its route programmed on every gateway replica.
-- Progressing while there is no status yet, while status is for an older metadata.generation, or
-- while Programmed/Ready are not True yet. Degraded when Accepted or ResolvedRefs is False, or
-- when a gateway rejected the configuration (Programmed=False, reason Rejected or Invalid).
--
-- Installed as resource.customizations.health.gatehouse.dev_McpServer in argocd-cm
-- (../argocd-cm.yaml is generated from this file followed by _common.lua:
-- python3 examples/gitops/argocd/gen_argocd_cm.py).

local function healthy_message(ready)
  if obj.status.url ~= nil then
    return "Ready: agents use " .. obj.status.url
  end
  return "Ready"
end
