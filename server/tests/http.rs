//! The HTTP surface through `app()` and the landing router with one-shot requests (as axum's
//! own examples test routers): the page, the web app's files with their caching headers,
//! health, the landing page and the certificate download. The real-process tests beside this
//! one cover the same server over real sockets.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use clap::Parser;
use server::landing::{self, Landing};
use server::{app, AppState, Config};
use tower::ServiceExt;

/// The app over a data folder and a web app folder holding a few files.
struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

fn test_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("pkg")).unwrap();
    // Big enough to be kept gzipped, repetitive enough to shrink.
    let css = "body { color: #eee; }\n".repeat(200);
    std::fs::write(site.join("pkg/fieldmesh.css"), &css).unwrap();
    std::fs::write(site.join("sw.js"), "const BUILD = '__FIELDMESH_BUILD__';\n").unwrap();
    std::fs::write(
        site.join("manifest.webmanifest"),
        "{\"name\":\"FieldMesh\"}",
    )
    .unwrap();
    TestApp {
        router: app_over(&site),
        _dir: dir,
    }
}

/// The app serving the web app in `site` (its data beside it).
fn app_over(site: &std::path::Path) -> Router {
    let config = Config::parse_from([
        "fieldmesh".as_ref(),
        "--tls".as_ref(),
        "off".as_ref(),
        "--site-root".as_ref(),
        site.as_os_str(),
    ]);
    let (state, _shutdown) = AppState::new(&config, &site.join("../data")).unwrap();
    app(state)
}

async fn get(
    router: &Router,
    path: &str,
    headers: &[(header::HeaderName, &str)],
) -> Response<Body> {
    let mut request = Request::get(path);
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(response: Response<Body>) -> String {
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn header_of(response: &Response<Body>, name: header::HeaderName) -> &str {
    response
        .headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_page_is_the_app_shell_with_its_manifest_and_hydration() {
    let app = test_app();
    let response = get(&app.router, "/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header_of(&response, header::CONTENT_TYPE).starts_with("text/html"));
    let html = text(response).await;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html:.80}");
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("/manifest.webmanifest"));
    assert!(
        html.contains("fieldmesh.js"),
        "the hydration script is named"
    );
    assert!(
        html.contains("width=device-width"),
        "phones get the mobile viewport"
    );
}

#[tokio::test]
async fn health_answers_ok() {
    let app = test_app();
    let response = get(&app.router, "/healthz", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, "ok");
}

#[tokio::test]
async fn files_come_gzipped_when_asked_and_revalidate_by_etag() {
    let app = test_app();
    let plain = get(&app.router, "/pkg/fieldmesh.css", &[]).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert_eq!(
        header_of(&plain, header::CONTENT_TYPE),
        "text/css; charset=utf-8"
    );
    assert_eq!(header_of(&plain, header::CACHE_CONTROL), "no-cache");
    assert_eq!(header_of(&plain, header::VARY), "accept-encoding");
    assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "");
    let etag = header_of(&plain, header::ETAG).to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let css = text(plain).await;

    let zipped = get(
        &app.router,
        "/pkg/fieldmesh.css",
        &[(header::ACCEPT_ENCODING, "br, gzip;q=0.8")],
    )
    .await;
    assert_eq!(header_of(&zipped, header::CONTENT_ENCODING), "gzip");
    let bytes = to_bytes(zipped.into_body(), 1 << 20).await.unwrap();
    assert!(
        bytes.len() < css.len() / 4,
        "gzip shrinks it: {} bytes",
        bytes.len()
    );
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unzipped)
        .unwrap();
    assert_eq!(unzipped, css);

    let again = get(
        &app.router,
        "/pkg/fieldmesh.css",
        &[(header::IF_NONE_MATCH, etag.as_str())],
    )
    .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(text(again).await.is_empty());
}

#[tokio::test]
async fn the_service_worker_is_never_cached_and_names_its_build() {
    let app = test_app();
    let response = get(&app.router, "/sw.js", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_of(&response, header::CACHE_CONTROL),
        "no-cache, no-store"
    );
    assert!(header_of(&response, header::CONTENT_TYPE).starts_with("text/javascript"));
    let script = text(response).await;
    assert!(!script.contains("__FIELDMESH_BUILD__"), "{script}");
}

#[tokio::test]
async fn unknown_and_escaping_paths_are_not_found() {
    let app = test_app();
    for path in [
        "/nope.js",
        "/../Cargo.toml",
        "/pkg/../../data/messages.sqlite3",
        "/%2e%2e/etc/passwd",
    ] {
        let response = get(&app.router, path, &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(text(response).await.contains("FieldMesh is at /"));
    }
}

#[tokio::test]
async fn a_plain_request_to_the_socket_endpoint_is_refused_clearly() {
    let app = test_app();
    let response = get(&app.router, "/ws", &[]).await;
    assert!(response.status().is_client_error(), "{}", response.status());
}

fn landing(with_ca: bool) -> Router {
    landing::router(Arc::new(Landing {
        app_urls: vec!["https://192.168.1.20:8443/".into()],
        ca_der: with_ca.then(|| vec![0x30, 0x82, 1, 2]),
        ca_pem: with_ca.then(|| "-----BEGIN CERTIFICATE-----\nMII\n".into()),
        ca_fingerprint: with_ca.then(|| "3A:91:<b>".into()),
    }))
}

#[tokio::test]
async fn the_landing_page_explains_and_links_to_the_app() {
    let response = get(&landing(true), "/", &[]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = text(response).await;
    assert!(html.contains("https://192.168.1.20:8443/"));
    assert!(html.contains("/fieldmesh-ca.crt"));
    assert!(
        html.contains("3A:91:&lt;b&gt;"),
        "the fingerprint is escaped"
    );
    assert!(!html.contains("3A:91:<b>"));
    assert!(html.contains("<svg"), "a QR code of the app's address");
    // Anything else on the plain-HTTP port goes back to the page.
    let other = get(&landing(true), "/ws", &[]).await;
    assert!(other.status().is_redirection());
    assert_eq!(header_of(&other, header::LOCATION), "/");
}

#[tokio::test]
async fn the_certificate_downloads_in_both_forms_and_only_when_there_is_one() {
    let der = get(&landing(true), "/fieldmesh-ca.crt", &[]).await;
    assert_eq!(
        header_of(&der, header::CONTENT_TYPE),
        "application/x-x509-ca-cert"
    );
    assert_eq!(
        header_of(&der, header::CONTENT_DISPOSITION),
        "attachment; filename=\"fieldmesh-ca.crt\""
    );
    assert_eq!(
        to_bytes(der.into_body(), 1024).await.unwrap().as_ref(),
        [0x30, 0x82, 1, 2]
    );
    let pem = get(&landing(true), "/fieldmesh-ca.pem", &[]).await;
    assert_eq!(
        header_of(&pem, header::CONTENT_TYPE),
        "application/x-pem-file"
    );
    assert!(text(pem).await.starts_with("-----BEGIN CERTIFICATE-----"));
    // Own certificates (no local authority): nothing to download.
    let none = get(&landing(false), "/fieldmesh-ca.crt", &[]).await;
    assert!(none.status().is_redirection());
}

#[tokio::test]
async fn no_site_can_frame_the_app_and_only_its_own_scripts_run() {
    let app = test_app();
    let page = get(&app.router, "/", &[]).await;
    let policy = header_of(&page, header::CONTENT_SECURITY_POLICY).to_string();
    assert_eq!(header_of(&page, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header_of(&page, header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(header_of(&page, header::REFERRER_POLICY), "no-referrer");
    let html = text(page).await;
    // The inline hydration script runs by this response's nonce, and nothing else inline.
    let nonce = html
        .split("nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the hydration script has a nonce");
    assert!(policy.contains(&format!("'nonce-{nonce}'")), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("'wasm-unsafe-eval'"), "{policy}");
    let scripts = policy
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert!(!scripts.contains("unsafe-inline"), "{scripts}");
    // Another response, another nonce.
    let again = get(&app.router, "/", &[]).await;
    assert_ne!(header_of(&again, header::CONTENT_SECURITY_POLICY), policy);

    for path in ["/pkg/fieldmesh.css", "/sw.js", "/healthz", "/nope"] {
        let response = get(&app.router, path, &[]).await;
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff",
            "{path}"
        );
        assert!(
            header_of(&response, header::CONTENT_SECURITY_POLICY)
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    let landing_page = get(&landing(true), "/", &[]).await;
    assert_eq!(header_of(&landing_page, header::X_FRAME_OPTIONS), "DENY");
    assert!(
        header_of(&landing_page, header::CONTENT_SECURITY_POLICY).contains("default-src 'none'")
    );
}

/// What a real server process prints before "FieldMesh is ready" (then it is stopped).
fn start_up_lines(args: &[&str]) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fieldmesh"))
        .args(["--listen", "127.0.0.1:0", "--log", "warn"])
        .args(args)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let ready = line.starts_with("FieldMesh is ready");
        lines.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

#[test]
fn the_qr_code_leads_a_phone_to_the_landing_page_first() {
    let lines = start_up_lines(&["--http-listen", "127.0.0.1:0"]);
    let landing = lines
        .iter()
        .find_map(|l| l.strip_prefix("Phones start here (installs the certificate): "))
        .expect("a landing page");
    let scanned = lines
        .iter()
        .find_map(|l| l.strip_prefix("The QR code below opens: "))
        .expect("the QR code's address is printed");
    // A phone without the certificate would get a "connection is not private" warning at the
    // https:// app; the landing page installs the certificate and then links on to the app.
    assert_eq!(scanned, landing, "{lines:#?}");
}

#[test]
fn with_tls_off_a_landing_address_is_not_silently_ignored() {
    let lines = start_up_lines(&["--tls", "off", "--http-listen", "127.0.0.1:0"]);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("--http-listen") && l.contains("is not used with --tls off")),
        "{lines:#?}"
    );
    // And without the flag, nothing is said about it.
    let lines = start_up_lines(&["--tls", "off", "--no-qr"]);
    assert!(
        !lines.iter().any(|l| l.contains("--http-listen")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn copies_compressed_at_build_time_are_sent_as_they_are_brotli_first() {
    let app = test_app();
    // What `./x site` writes beside a file (tools/compress.mjs); the server trusts them as
    // they are, so marked bytes show which copy was sent.
    let site = app._dir.path().join("site");
    std::fs::write(site.join("pkg/fieldmesh.js"), "let app = 1;\n".repeat(200)).unwrap();
    std::fs::write(site.join("pkg/fieldmesh.js.br"), b"brotli copy").unwrap();
    std::fs::write(site.join("pkg/fieldmesh.js.gz"), b"gzip copy").unwrap();
    let app = TestApp {
        router: app_over(&site),
        _dir: app._dir,
    };
    for (accept, coding, body) in [
        ("gzip, deflate, br, zstd", "br", "brotli copy"),
        ("br;q=0, gzip", "gzip", "gzip copy"),
        ("gzip", "gzip", "gzip copy"),
        ("identity", "", &"let app = 1;\n".repeat(200)[..]),
    ] {
        let response = get(
            &app.router,
            "/pkg/fieldmesh.js",
            &[(header::ACCEPT_ENCODING, accept)],
        )
        .await;
        assert_eq!(
            header_of(&response, header::CONTENT_ENCODING),
            coding,
            "{accept}"
        );
        assert_eq!(text(response).await, body, "{accept}");
    }
    // The copies are not files of their own.
    let copy = get(&app.router, "/pkg/fieldmesh.js.br", &[]).await;
    assert_eq!(copy.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_compressed_copy_older_than_its_file_is_not_sent() {
    let app = test_app();
    let site = app._dir.path().join("site");
    std::fs::write(site.join("pkg/fieldmesh.js.br"), b"stale brotli copy").unwrap();
    std::fs::write(site.join("pkg/fieldmesh.js.gz"), b"stale gzip copy").unwrap();
    // The file is edited after its copies were made (as a test turning a site into the next
    // release does).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let js = "let next = 2;\n".repeat(200);
    std::fs::write(site.join("pkg/fieldmesh.js"), &js).unwrap();
    let router = app_over(&site);
    let response = get(
        &router,
        "/pkg/fieldmesh.js",
        &[(header::ACCEPT_ENCODING, "br, gzip")],
    )
    .await;
    assert_eq!(header_of(&response, header::CONTENT_ENCODING), "gzip");
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut unzipped)
        .unwrap();
    assert_eq!(unzipped, js, "gzip made again from the file as it is now");
}
