-- Argo CD health check for argoproj.io/Application (app-of-apps).
--
-- Argo CD stopped assessing child Applications' health in 1.8, so by default a parent
-- Application does not wait for a child to be Healthy before the next sync wave. This check (the
-- one Argo CD's documentation gives for sync waves across Applications) restores that, so the
-- gatehouse-crds → gatehouse → policies waves in apps/ run in order.
--
-- Installed as resource.customizations.health.argoproj.io_Application in argocd-cm
-- (../argocd-cm.yaml is generated from these files: python3 examples/gitops/argocd/gen_argocd_cm.py).

local hs = {}
hs.status = "Progressing"
hs.message = ""
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
