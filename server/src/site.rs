//! The built web app on disk, and the service worker made from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The placeholder in `sw.js` that becomes the release's build id.
const BUILD_PLACEHOLDER: &str = "__FIELDMESH_BUILD__";

/// What the server knows about the built web app.
#[derive(Debug)]
pub struct Site {
    /// A hash of every file of the release: a new build gets a new service worker cache.
    pub build_id: String,
    /// `sw.js` with the build id filled in; `None` when the site has no service worker.
    service_worker: Option<String>,
}

impl Site {
    /// Reads the site at `root`. A missing or partial site gives an app without offline
    /// support rather than no server.
    pub fn load(root: &Path) -> Self {
        let mut files = Vec::new();
        collect_files(root, &mut files);
        files.sort();
        let mut hash = Sha256::new();
        for file in &files {
            if file.file_name().is_some_and(|name| name == "sw.js") {
                continue;
            }
            if let Ok(bytes) = std::fs::read(file) {
                hash.update(
                    file.strip_prefix(root)
                        .unwrap_or(file)
                        .to_string_lossy()
                        .as_bytes(),
                );
                hash.update([0]);
                hash.update(&bytes);
            }
        }
        let build_id: String = hash
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();
        let service_worker = std::fs::read_to_string(root.join("sw.js"))
            .ok()
            .map(|script| script.replace(BUILD_PLACEHOLDER, &build_id));
        Self {
            build_id,
            service_worker,
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// `GET /sw.js`: the service worker for this release. Never cached by HTTP, so browsers see a
/// new release as soon as it is installed.
pub async fn service_worker(State(site): State<Arc<Site>>) -> Response {
    match &site.service_worker {
        Some(script) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            script.clone(),
        )
            .into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "this build has no service worker",
        )
            .into_response(),
    }
}
