//! The plain-HTTP landing page: what a phone sees at `http://<laptop>:8080/` before it trusts
//! the local certificate authority. It explains, per platform, how to install the authority,
//! offers it for download, and links to the app over HTTPS. Nothing else is served over HTTP.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// What the landing page shows.
pub struct Landing {
    /// The app's HTTPS addresses, the one to scan first.
    pub app_urls: Vec<String>,
    /// The local CA certificate (DER), when FieldMesh made it.
    pub ca_der: Option<Vec<u8>>,
    /// The same in PEM.
    pub ca_pem: Option<String>,
    /// SHA-256 fingerprint of the CA, for comparing on the phone.
    pub ca_fingerprint: Option<String>,
}

/// The landing page's policy: its own inline style and QR code, nothing else.
const LANDING_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; frame-ancestors 'none'";

/// The landing site's routes.
pub fn router(landing: Arc<Landing>) -> Router {
    let router = Router::new()
        .route("/", get(page))
        .route("/fieldmesh-ca.crt", get(ca_der))
        .route("/fieldmesh-ca.pem", get(ca_pem))
        .fallback(|| async { Redirect::to("/") })
        .with_state(landing);
    crate::protective_headers(router, LANDING_POLICY)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An SVG QR code of `text` (dark modules on white, for any phone camera).
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

async fn page(State(landing): State<Arc<Landing>>) -> Html<String> {
    let first = landing.app_urls.first().cloned().unwrap_or_default();
    let links: String = landing
        .app_urls
        .iter()
        .map(|url| {
            format!(
                r#"<li><a href="{0}" data-testid="app-link">{0}</a></li>"#,
                escape(url)
            )
        })
        .collect();
    let qr = qr_svg(&first).unwrap_or_default();
    let ca_section = if landing.ca_der.is_some() {
        let fingerprint = escape(landing.ca_fingerprint.as_deref().unwrap_or(""));
        format!(
            r#"<h2>1. Install the FieldMesh certificate</h2>
<p>This laptop made its own certificate authority so your phone can reach it securely without
the internet. Install it once; it is only used for this FieldMesh.</p>
<p><a class="button" href="/fieldmesh-ca.crt" data-testid="ca-download">Download the certificate</a></p>
<details open><summary>Android</summary><ol>
<li>Tap <b>Download the certificate</b> above.</li>
<li>Open <b>Settings → Security → Encryption &amp; credentials → Install a certificate → CA
certificate</b>, tap <b>Install anyway</b> and choose <code>fieldmesh-ca.crt</code>.</li>
<li>Come back here and open the app address below.</li></ol></details>
<details><summary>iPhone and iPad</summary><ol>
<li>Open this page in <b>Safari</b> and tap <b>Download the certificate</b>; allow the profile.</li>
<li>Open <b>Settings → General → VPN &amp; Device Management</b>, tap the FieldMesh profile and
<b>Install</b>.</li>
<li>Open <b>Settings → General → About → Certificate Trust Settings</b> and switch on full trust
for "FieldMesh local CA".</li></ol></details>
<details><summary>Laptop or desktop</summary><ol>
<li>Download the certificate (or <a href="/fieldmesh-ca.pem">the PEM file</a>).</li>
<li>Chrome/Edge: Settings → Privacy and security → Security → Manage certificates →
Authorities → Import. Firefox: Settings → Certificates → View Certificates → Authorities →
Import, and tick "trust this CA to identify websites". macOS: open it in Keychain Access and
set "Always Trust". Windows: open it and install into "Trusted Root Certification
Authorities".</li></ol></details>
<p class="small">Check the fingerprint matches the one the laptop shows:<br><code data-testid="ca-fingerprint">{fingerprint}</code></p>
<h2>2. Open FieldMesh</h2>"#
        )
    } else {
        "<h2>Open FieldMesh</h2>".to_string()
    };
    Html(format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark"><title>Join FieldMesh</title>
<style>
body {{ margin: 0 auto; max-width: 640px; padding: 20px; background: #0f1419; color: #e6edf3;
  font: 16px/1.5 system-ui, sans-serif; }}
a {{ color: #3fb68b; }} code {{ word-break: break-all; }}
.button {{ display: inline-block; padding: 12px 20px; border-radius: 14px; background: #3fb68b;
  color: #06140f; font-weight: 700; text-decoration: none; }}
details {{ background: #182028; border-radius: 12px; padding: 8px 14px; margin: 8px 0; }}
summary {{ font-weight: 700; cursor: pointer; min-height: 32px; }}
.qr {{ background: #fff; display: inline-block; padding: 8px; border-radius: 8px; }}
.small {{ color: #8b98a5; font-size: 0.9rem; }}
</style></head><body>
<h1>Join FieldMesh</h1>
<p>Offline-first chat for the field. It keeps working when the network does not.</p>
{ca_section}
<p>Open the app at:</p><ul>{links}</ul>
<div class="qr" data-testid="app-qr">{qr}</div>
<p class="small">Then use your browser's menu: <b>Install app</b> or <b>Add to Home Screen</b>.
The installed app opens even without any connection.</p>
</body></html>"#
    ))
}

async fn ca_der(State(landing): State<Arc<Landing>>) -> Response {
    download(
        landing.ca_der.clone(),
        "application/x-x509-ca-cert",
        "fieldmesh-ca.crt",
    )
}

async fn ca_pem(State(landing): State<Arc<Landing>>) -> Response {
    download(
        landing.ca_pem.clone(),
        "application/x-pem-file",
        "fieldmesh-ca.pem",
    )
}

/// The authority's certificate as a download, or back to the landing page when there is none.
fn download(body: Option<impl IntoResponse>, content_type: &str, file: &str) -> Response {
    match body {
        Some(body) => (
            [
                (header::CONTENT_TYPE, content_type.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{file}\""),
                ),
            ],
            body,
        )
            .into_response(),
        None => Redirect::to("/").into_response(),
    }
}
