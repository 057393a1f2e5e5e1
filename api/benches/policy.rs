//! Control-plane speed (DESIGN §9): a policy decision among 10 / 1,000 / 10,000 policies, and
//! compiling 10,000 custom resources. Run with `cargo bench -p gatehouse-api`.

use chrono::Utc;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gatehouse_api::access_policy::{
    AccessPolicySpec, Action, NameFilter, Subject, Target, UserSelector,
};
use gatehouse_api::compile::{Resources, SecretMeta};
use gatehouse_api::config::PolicyConfig;
use gatehouse_api::credential_provider::{CredentialProviderSpec, SharedSecret};
use gatehouse_api::gateway::McpGatewaySpec;
use gatehouse_api::identity::UserIdentity;
use gatehouse_api::policy::{Operation, PolicySet, Request};
use gatehouse_api::refs::{ObjectKey, SecretKeySelector};
use gatehouse_api::server::McpServerSpec;
use gatehouse_api::trust_provider::{Oidc, TrustProviderSpec};
use gatehouse_api::{AccessPolicy, CredentialProvider, McpGateway, McpServer, TrustProvider};
use std::hint::black_box;

const NS: &str = "bench";

fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).expect("bench fixture parses")
}

fn named<K: kube::Resource<DynamicType = ()>>(mut obj: K, name: &str) -> K {
    obj.meta_mut().name = Some(name.to_string());
    obj.meta_mut().namespace = Some(NS.to_string());
    obj
}

/// `n` policies, spread over `servers` servers, each granting one group a few tool globs; one in
/// fifty uses a wildcard subject the index cannot narrow.
fn mk_policies(n: usize, servers: usize) -> Vec<AccessPolicy> {
    (0..n)
        .map(|i| {
            let users = if i % 50 == 0 {
                UserSelector {
                    emails: vec![format!("*@dept{i}.example.com")],
                    ..Default::default()
                }
            } else {
                UserSelector {
                    groups: vec![format!("group-{i}")],
                    ..Default::default()
                }
            };
            let spec = AccessPolicySpec {
                action: if i % 10 == 0 {
                    Action::Deny
                } else {
                    Action::Allow
                },
                subjects: vec![Subject {
                    users: Some(users),
                    agents: None,
                }],
                targets: vec![Target {
                    server: format!("server-{}", i % servers),
                    namespace: None,
                    credential_provider: (i % 10 != 0).then(|| format!("cred-{}", i % servers)),
                    tools: Some(NameFilter {
                        allow: Some(vec!["get_*".into(), "list_*".into(), format!("tool_{i}")]),
                        deny: vec!["get_secret*".into()],
                    }),
                    resources: None,
                    prompts: None,
                }],
                when: None,
            };
            named(AccessPolicy::new("x", spec), &format!("policy-{i:05}"))
        })
        .collect()
}

fn mk_resources(policies: usize, servers: usize) -> Resources {
    let gateway: McpGatewaySpec =
        yaml("trustProviders: [corp]\npublicUrl: https://mcp.example.com\n");
    let trust = TrustProviderSpec {
        authenticates: None,
        oidc: Some(yaml::<Oidc>("issuer: https://login.example.com\n")),
        kubernetes_service_account: None,
        mtls: None,
        api_key: None,
    };
    let mut res = Resources {
        gateways: vec![named(McpGateway::new("x", gateway), "gw")],
        trust_providers: vec![named(TrustProvider::new("x", trust), "corp")],
        ..Default::default()
    };
    for s in 0..servers {
        let spec: McpServerSpec = yaml(&format!(
            "gatewayRef: {{name: gw}}\nurl: https://s{s}.example.com/mcp\n"
        ));
        res.servers
            .push(named(McpServer::new("x", spec), &format!("server-{s}")));
        let cred: CredentialProviderSpec = CredentialProviderSpec {
            inject: Default::default(),
            secret: Some(SharedSecret {
                secret_ref: SecretKeySelector {
                    name: format!("token-{s}"),
                    key: "token".into(),
                },
            }),
            per_user_secret: None,
            oauth2_client_credentials: None,
            oauth2_token_exchange: None,
            oauth2_authorization_code: None,
            signed_jwt: None,
        };
        res.credential_providers.push(named(
            CredentialProvider::new("x", cred),
            &format!("cred-{s}"),
        ));
        res.secrets.push(SecretMeta {
            namespace: NS.into(),
            name: format!("token-{s}"),
            keys: ["token".to_string()].into(),
        });
    }
    res.policies = mk_policies(policies, servers);
    res
}

fn policy_configs(n: usize) -> Vec<PolicyConfig> {
    // Worst case for the per-server split: every policy targets the same server.
    let res = mk_resources(n, 1);
    let compiled = gatehouse_api::compile(&res);
    compiled
        .gateways
        .into_values()
        .next()
        .expect("one gateway")
        .policies
}

fn decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [10usize, 1_000, 10_000] {
        let set = PolicySet::new(&policy_configs(n)).expect("policies compile");
        let user = UserIdentity {
            id: "alice".into(),
            email: Some("alice@example.com".into()),
            groups: vec![
                format!("group-{}", n / 2 + 1),
                "group-7".into(),
                "staff".into(),
            ],
            provider: "corp".into(),
            claims: Default::default(),
        };
        let server = ObjectKey::new(NS, "server-0");
        let now = Utc::now();
        // The question asked of every iteration (the tool name opaque to the optimizer).
        let request = || Request {
            user: Some(&user),
            agent: None,
            server: &server,
            operation: Operation::Tool {
                name: black_box("get_issue"),
            },
            arguments: None,
            now,
        };
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(set.decide(&request())))
        });
        // The same question for one item of a filtered list: the decision without its reason.
        group.bench_with_input(BenchmarkId::new("allows", n), &n, |b, _| {
            b.iter(|| black_box(set.allows(&request())))
        });
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    // 10,000 custom resources: 1 gateway, 1 trust provider, 100 servers, 100 credential
    // providers and 9,798 policies.
    let res = mk_resources(9_798, 100);
    let total = res.gateways.len()
        + res.trust_providers.len()
        + res.servers.len()
        + res.credential_providers.len()
        + res.policies.len();
    assert_eq!(total, 10_000);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function("10000_crs", |b| {
        b.iter(|| black_box(gatehouse_api::compile(black_box(&res))))
    });
    group.finish();
}

fn push(c: &mut Criterion) {
    // What pushing a 10,000-CR compilation to a connected gateway costs besides the socket:
    // the operator encodes the gateway's snapshot as one stream line (operator/src/push), the
    // gateway decodes it (gateway/src/cluster/push).
    use gatehouse_api::push::StreamMessage;
    let compiled = gatehouse_api::compile(&mk_resources(9_798, 100));
    let config = compiled
        .gateways
        .values()
        .next()
        .expect("one gateway")
        .clone();
    let msg = StreamMessage::Snapshot {
        config: Box::new(config),
    };
    let line = serde_json::to_vec(&msg).expect("serializes");
    println!("push line for 10,000 CRs: {} bytes", line.len());
    let mut group = c.benchmark_group("push");
    group.sample_size(10);
    group.bench_function("encode_10000_crs", |b| {
        b.iter(|| black_box(serde_json::to_vec(black_box(&msg)).expect("serializes")))
    });
    group.bench_function("decode_10000_crs", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<StreamMessage>(black_box(&line)).expect("parses"))
        })
    });
    group.finish();
}

criterion_group!(benches, decision, compile, push);
criterion_main!(benches);
