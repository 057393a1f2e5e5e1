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
-- (../argocd-cm.yaml is generated from this file followed by _common.lua:
-- python3 examples/gitops/argocd/gen_argocd_cm.py).

local function healthy_message(ready)
  if ready.message ~= nil and ready.message ~= "" then
    return "Ready: " .. ready.message
  end
  return "Ready: in force"
end
