//! Shared helpers of the end-to-end tests: child processes (demo MCP server, gateway), an
//! `rmcp` client, and manifest directories derived from `examples/quickstart`.

#![forbid(unsafe_code)]

pub mod consent;
pub mod mcp;
pub mod oauth;
pub mod procs;
pub mod raw;
pub mod token_exchange;

use std::path::{Path, PathBuf};

/// The quickstart's API keys.
pub const ALICE_KEY: &str = "alice-quickstart-key";
/// Bob's key.
pub const BOB_KEY: &str = "bob-quickstart-key";
/// The upstream token the quickstart's CredentialProvider injects.
pub const UPSTREAM_TOKEN: &str = "quickstart-upstream-token";

/// A scratch directory holding a copy of `examples/quickstart` pointed at a given upstream, plus
/// logs. Deleted on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// Copy the quickstart manifests, replacing the upstream URL.
    pub fn quickstart(upstream: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("manifests"))?;
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
        for entry in std::fs::read_dir(src)? {
            let p = entry?.path();
            if p.extension().is_some_and(|e| e == "yaml") {
                let text =
                    std::fs::read_to_string(&p)?.replace("http://127.0.0.1:3001/mcp", upstream);
                std::fs::write(
                    dir.path().join("manifests").join(p.file_name().unwrap()),
                    text,
                )?;
            }
        }
        Ok(Self { dir })
    }

    /// The manifest directory.
    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// A path for a log or other file.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Write (or replace) a manifest file.
    pub fn write_manifest(&self, name: &str, text: &str) -> anyhow::Result<()> {
        // Write then rename, as editors and GitOps tools do, so the gateway never reads half a file.
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.manifests().join(name))?;
        Ok(())
    }
}

/// A Deny policy on `admin_*` tools for everyone with a user, used to show decisions that name
/// their policy.
pub const DENY_ADMIN: &str = r#"apiVersion: gatehouse.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: no-admin-tools
  namespace: default
spec:
  action: Deny
  subjects:
    - users:
        ids: ["*"]
  targets:
    - server: demo
      tools:
        allow: ["admin_*"]
"#;
