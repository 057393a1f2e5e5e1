//! The four conditions of every custom resource, computed without I/O: `Accepted` and
//! `ResolvedRefs` from the compiler, `Programmed` from the gateways' ACK/NACKs, `Ready` from the
//! three; and the stamping that keeps `lastTransitionTime` unless the status changes.

use crate::replicas::Rollout;
use gatehouse_api::Compiled;
use gatehouse_api::compile::ObjectStatus;
use gatehouse_api::conditions::{ConditionStatus, PROGRAMMED, READY};
use gatehouse_api::config::GatewayId;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

fn unknown(type_: &str, reason: &str, message: impl Into<String>) -> ConditionStatus {
    ConditionStatus {
        type_: type_.into(),
        status: "Unknown".into(),
        reason: reason.into(),
        message: message.into(),
    }
}

/// `Programmed` for an object the compiler reported as `status`: has every connected replica of
/// every gateway carrying it applied the current version?
pub fn programmed(
    kind: &str,
    status: &ObjectStatus,
    compiled: &Compiled,
    rollout: impl Fn(&GatewayId, &str) -> Rollout,
) -> ConditionStatus {
    if status.gateways.is_empty() {
        return match status.conditions.iter().find(|c| !c.is_true()) {
            Some(bad) => ConditionStatus::failed(
                PROGRAMMED,
                &bad.reason,
                format!("not programmed: {} is False", bad.type_),
            ),
            None => unknown(
                PROGRAMMED,
                "NotAttached",
                format!("no gateway uses this {kind}"),
            ),
        };
    }
    let many = status.gateways.len() > 1;
    let mut parts = Vec::new();
    let mut pending = false;
    for id in &status.gateways {
        let Some(config) = compiled.gateways.get(id) else {
            continue;
        };
        let v = &config.version;
        let prefix = if many {
            format!("{id}: ")
        } else {
            String::new()
        };
        match rollout(id, v) {
            Rollout::Rejected { pod, reason } => {
                return ConditionStatus::failed(
                    PROGRAMMED,
                    "Rejected",
                    format!("{prefix}pod {pod} rejected version {v}: {reason}"),
                );
            }
            Rollout::NoReplicas => {
                pending = true;
                parts.push(format!(
                    "{prefix}waiting for a gateway replica to connect (version {v})"
                ));
            }
            Rollout::Applying { applied, connected } => {
                pending = true;
                parts.push(format!(
                    "{prefix}{applied}/{connected} replicas applied version {v}"
                ));
            }
            Rollout::Applied { connected } => parts.push(format!(
                "{prefix}{connected}/{connected} replicas applied version {v}"
            )),
        }
    }
    let message = parts.join("; ");
    if pending {
        unknown(PROGRAMMED, "Pending", message)
    } else {
        ConditionStatus::ok(PROGRAMMED, "Programmed", message)
    }
}

/// `Ready`: `True` when `Accepted`, `ResolvedRefs` and `Programmed` all are; otherwise `False`
/// with the reason and message of the first that is not.
pub fn ready(conditions: &[ConditionStatus]) -> ConditionStatus {
    match conditions.iter().find(|c| !c.is_true()) {
        None => ConditionStatus::ok(
            READY,
            "Ready",
            "accepted, references resolved and applied by every connected gateway replica",
        ),
        Some(c) => ConditionStatus::failed(READY, &c.reason, format!("{}: {}", c.type_, c.message)),
    }
}

/// Turns computed conditions into API conditions, keeping `lastTransitionTime` of conditions
/// whose status did not change.
pub fn stamp(
    current: &[Condition],
    computed: &[ConditionStatus],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    computed
        .iter()
        .map(|c| {
            let since = current
                .iter()
                .find(|old| old.type_ == c.type_ && old.status == c.status)
                .map(|old| old.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_api::conditions::{ACCEPTED, RESOLVED_REFS};
    use k8s_openapi::jiff::Timestamp;

    fn clean() -> Vec<ConditionStatus> {
        vec![
            ConditionStatus::ok(ACCEPTED, "Accepted", "ok"),
            ConditionStatus::ok(RESOLVED_REFS, "ResolvedRefs", "ok"),
        ]
    }

    #[test]
    fn unattached_and_broken_objects() {
        let s = ObjectStatus {
            conditions: clean(),
            ..Default::default()
        };
        let p = programmed("TrustProvider", &s, &Compiled::default(), |_, _| {
            Rollout::NoReplicas
        });
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("Unknown", "NotAttached")
        );
        let mut broken = s.clone();
        broken.conditions[1] = ConditionStatus::failed(RESOLVED_REFS, "ServerNotFound", "x");
        let p = programmed("AccessPolicy", &broken, &Compiled::default(), |_, _| {
            Rollout::NoReplicas
        });
        assert_eq!(
            (p.status.as_str(), p.reason.as_str()),
            ("False", "ServerNotFound")
        );
        let r = ready(&[broken.conditions.clone(), vec![p]].concat());
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ServerNotFound")
        );
    }

    #[test]
    fn transition_time_changes_only_on_transitions() {
        let t0 = Time(Timestamp::from_second(1_000).unwrap());
        let t1 = Time(Timestamp::from_second(2_000).unwrap());
        let first = stamp(&[], &clean(), Some(1), &t0);
        let mut changed = clean();
        changed[0].message = "new message".into();
        changed[1] = ConditionStatus::failed(RESOLVED_REFS, "SecretNotFound", "gone");
        let second = stamp(&first, &changed, Some(2), &t1);
        assert_eq!(second[0].last_transition_time, t0);
        assert_eq!(second[0].observed_generation, Some(2));
        assert_eq!(second[1].last_transition_time, t1);
    }
}
