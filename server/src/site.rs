//! The web app the server hands out: embedded in the binary at build time (so one file is the
//! whole deployment), or read from `--site-root` for development. Held in memory with the
//! brotli and gzip copies `./x` made of each compressible file at build time (gzip made at
//! start for a file without one), and a service worker whose cache is named after the build.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

/// The placeholder in `sw.js` that becomes the release's build id.
const BUILD_PLACEHOLDER: &str = "__FIELDMESH_BUILD__";

#[derive(RustEmbed)]
#[folder = "$FIELDMESH_EMBED_DIR"]
struct Embedded;

/// One file of the web app, and the copies compressed at build time. Embedded files stay in
/// the binary (nothing is copied or read at start: a file's pages are touched when it is
/// first sent).
struct Asset {
    bytes: Bytes,
    brotli: Option<Bytes>,
    gzip: Option<Bytes>,
    content_type: &'static str,
    etag: HeaderValue,
}

/// A file as found: its path, its bytes and their SHA-256 (computed at build time when
/// embedded).
struct File {
    path: String,
    bytes: Bytes,
    sha256: [u8; 32],
}

impl File {
    fn read(path: String, bytes: Vec<u8>) -> Self {
        let sha256 = Sha256::digest(&bytes).into();
        Self {
            path,
            bytes: Bytes::from(bytes),
            sha256,
        }
    }
}

/// The web app in memory.
pub struct Site {
    /// A hash of every file of the release: a new build gets a new service worker cache.
    pub build_id: String,
    /// Where the files came from, for the log.
    pub origin: String,
    assets: HashMap<String, Asset>,
}

impl Site {
    /// The web app built into this binary.
    pub fn embedded() -> Self {
        let files = Embedded::iter()
            .filter_map(|path| {
                let file = Embedded::get(&path)?;
                Some(File {
                    path: path.to_string(),
                    sha256: file.metadata.sha256_hash(),
                    bytes: match file.data {
                        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
                        Cow::Owned(bytes) => Bytes::from(bytes),
                    },
                })
            })
            .collect();
        Self::from_files(files, "embedded in the binary".into())
    }

    /// The web app in a folder on disk.
    pub fn from_dir(root: &Path) -> Self {
        let mut files = Vec::new();
        collect_files(root, root, &mut files);
        // A compressed copy older than its file was made from an earlier version of it (the
        // file was edited in place): it is left out, and gzip is made again at start.
        let modified = |path: &str| {
            std::fs::metadata(root.join(path))
                .and_then(|m| m.modified())
                .ok()
        };
        files.retain(|(path, _)| {
            let Some(original) = path
                .strip_suffix(".br")
                .or_else(|| path.strip_suffix(".gz"))
            else {
                return true;
            };
            modified(path) >= modified(original)
        });
        let files = files
            .into_iter()
            .map(|(path, bytes)| File::read(path, bytes))
            .collect();
        Self::from_files(files, root.display().to_string())
    }

    fn from_files(files: Vec<File>, origin: String) -> Self {
        // `x.br` and `x.gz` are compressed copies of `x`, not files of their own.
        let (compressed, mut files): (Vec<_>, Vec<_>) = files
            .into_iter()
            .partition(|f| f.path.ends_with(".br") || f.path.ends_with(".gz"));
        let mut compressed: HashMap<String, Bytes> =
            compressed.into_iter().map(|f| (f.path, f.bytes)).collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        // From the files' hashes (made at build time when embedded): no file is read for it.
        let mut hash = Sha256::new();
        for file in files.iter().filter(|f| f.path != "sw.js") {
            hash.update(file.path.as_bytes());
            hash.update([0]);
            hash.update(file.sha256);
        }
        let build_id = mesh::hex::encode(&hash.finalize()[..8]);
        let assets = files
            .into_iter()
            .map(|file| {
                let file = if file.path == "sw.js" {
                    let text =
                        String::from_utf8_lossy(&file.bytes).replace(BUILD_PLACEHOLDER, &build_id);
                    File::read(file.path, text.into_bytes())
                } else {
                    file
                };
                let brotli = compressed.remove(&format!("{}.br", file.path));
                let gzip = compressed.remove(&format!("{}.gz", file.path));
                (file.path.clone(), Asset::new(file, brotli, gzip))
            })
            .collect();
        Self {
            build_id,
            origin,
            assets,
        }
    }

    /// Whether the Wasm app is there (a server built without `./x` has none).
    pub fn has_app(&self) -> bool {
        self.assets.contains_key("pkg/fieldmesh.wasm")
    }

    /// Answers a request for `path`, honouring `If-None-Match` and `Accept-Encoding` (brotli
    /// first, then gzip).
    fn respond(&self, path: &str, headers: &HeaderMap) -> Option<Response> {
        let asset = self.assets.get(path)?;
        // The service worker and the page must never come stale from an HTTP cache; the other
        // files are revalidated cheaply with their ETag.
        let cache = if path == "sw.js" {
            "no-cache, no-store"
        } else {
            "no-cache"
        };
        if headers.get(header::IF_NONE_MATCH) == Some(&asset.etag) {
            return Some(
                (
                    StatusCode::NOT_MODIFIED,
                    [(header::ETAG, asset.etag.clone())],
                )
                    .into_response(),
            );
        }
        let accepted = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let encoded = [("br", &asset.brotli), ("gzip", &asset.gzip)]
            .into_iter()
            .find_map(|(name, bytes)| {
                Some((name, bytes.as_ref()?)).filter(|_| accepts(accepted, name))
            });
        let mut response = match encoded {
            Some((name, bytes)) => {
                let mut response = Response::new(Body::from(bytes.clone()));
                response
                    .headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static(name));
                response
            }
            None => Response::new(Body::from(asset.bytes.clone())),
        };
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        headers.insert(header::ETAG, asset.etag.clone());
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        Some(response)
    }
}

/// Whether an `Accept-Encoding` value accepts `coding` (named, and not with `q=0`).
fn accepts(accepted: &str, coding: &str) -> bool {
    accepted.split(',').any(|entry| {
        let mut parts = entry.split(';').map(str::trim);
        parts
            .next()
            .is_some_and(|name| name.eq_ignore_ascii_case(coding))
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
    })
}

impl Asset {
    fn new(file: File, brotli: Option<Bytes>, gzip: Option<Bytes>) -> Self {
        let content_type = content_type(&file.path);
        let compressible = !content_type.starts_with("image/png");
        // Made here only for a file `./x` did not compress (a site built some other way).
        let gzip = gzip.or_else(|| {
            (compressible && file.bytes.len() > 1024).then(|| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                encoder
                    .write_all(&file.bytes)
                    .expect("writing to a Vec cannot fail");
                Bytes::from(encoder.finish().expect("writing to a Vec cannot fail"))
            })
        });
        let etag = mesh::hex::encode(&file.sha256[..12]);
        Self {
            bytes: file.bytes,
            brotli,
            gzip,
            content_type,
            etag: HeaderValue::from_str(&format!("\"{etag}\""))
                .expect("hex is a valid header value"),
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or_default() {
        "wasm" => "application/wasm",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        "json" => "application/json",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else if let (Ok(relative), Ok(bytes)) = (path.strip_prefix(root), std::fs::read(&path)) {
            out.push((relative.to_string_lossy().replace('\\', "/"), bytes));
        }
    }
}

/// Fallback handler: a file of the web app, or 404.
pub async fn serve_asset(State(site): State<Arc<Site>>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    site.respond(path, &headers)
        .unwrap_or_else(|| (StatusCode::NOT_FOUND, "Not found. FieldMesh is at /").into_response())
}
