//! Local mode: the manifests come from a directory instead of the Kubernetes API.

use anyhow::Context;
use gatehouse_api::manifest::{self, Loaded, ManifestFile};
use std::path::{Path, PathBuf};

/// Every `*.yaml` / `*.yml` file under `dir`, recursively, in path order (so loading is
/// deterministic). Hidden files and directories are skipped.
pub fn manifest_paths(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("reading directory {}", d.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Load every manifest under `dir` (or the single file `dir`).
pub fn load_dir(dir: &Path) -> anyhow::Result<(Loaded, usize)> {
    let paths = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        manifest_paths(dir)?
    };
    let mut files = Vec::with_capacity(paths.len());
    for p in &paths {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        files.push(ManifestFile {
            source: p.display().to_string(),
            text,
        });
    }
    Ok((manifest::load(&files), paths.len()))
}
