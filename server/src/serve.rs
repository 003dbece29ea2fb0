//! Serving: the app's listener (HTTPS with the local certificate authority, or plain HTTP),
//! the plain-HTTP landing page beside it, the addresses and QR code people need, and a
//! graceful stop on SIGTERM or Ctrl+C.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;

use crate::config::TlsMode;
use crate::landing::{self, Landing};
use crate::{app, tls, AppState, Config};

/// How long open connections get to finish after SIGTERM before the process exits.
const GRACE: Duration = Duration::from_secs(10);

/// Serves `state` as `config` says until SIGTERM or Ctrl+C, then lets open requests finish
/// and sends `true` on `shutdown` so WebSockets close.
pub async fn serve(
    config: &Config,
    state: AppState,
    data_dir: &Path,
    shutdown: tokio::sync::watch::Sender<bool>,
) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    if config.retention_days > 0 {
        let store = state.store.clone();
        let chunks = state.chunks.clone();
        let keep_for = u64::from(config.retention_days) * 24 * 60 * 60 * 1000;
        tokio::spawn(async move {
            let mut every_hour = tokio::time::interval(Duration::from_secs(60 * 60));
            loop {
                every_hour.tick().await;
                let cutoff = crate::now_ms().saturating_sub(keep_for);
                match store
                    .run(move |s| s.forget_older_than_blocking(cutoff))
                    .await
                {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "messages past the retention deleted"),
                    Err(error) => tracing::error!(%error, "deleting old messages failed"),
                }
                // Shared files' pieces go after as long as the messages that name them.
                let chunks = chunks.clone();
                let cutoff = std::time::SystemTime::now()
                    .checked_sub(Duration::from_millis(keep_for))
                    .unwrap_or(std::time::UNIX_EPOCH);
                match tokio::task::spawn_blocking(move || chunks.forget_older_than_blocking(cutoff))
                    .await
                {
                    Ok(Ok((0, _))) => {}
                    Ok(Ok((count, bytes))) => {
                        tracing::info!(count, bytes, "file pieces past the retention deleted")
                    }
                    Ok(Err(error)) => tracing::error!(%error, "deleting old file pieces failed"),
                    Err(error) => tracing::error!(%error, "deleting old file pieces failed"),
                }
            }
        });
    }
    let access = Arc::clone(&state.access);
    tokio::spawn(async move {
        let mut every_minute = tokio::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            access.limits.forget_idle();
        }
    });
    if state.access.code.is_some() {
        println!("A join code is required before a device may read or send.");
    }
    let admission = crate::admit::Admission::new(
        crate::admit::open_file_room(config.max_connections),
        config.max_connections_per_address,
        config.trusted_proxies.clone(),
    );
    let admit = crate::admit::Admit(admission);
    let app_handle: Handle<SocketAddr> = Handle::new();
    let service = app(state).into_make_service_with_connect_info::<SocketAddr>();

    // With the local CA, phones can use only the addresses and names it may vouch for.
    let scope = match (config.tls, &config.tls_cert) {
        (TlsMode::LocalCa, None) => config.ca_scope(),
        _ => tls::CaScope::Unconstrained,
    };
    let tls = match (config.tls, &config.tls_cert, &config.tls_key) {
        (_, Some(cert), Some(key)) => Some(tls::from_files(cert, key)?),
        (TlsMode::LocalCa, _, _) => {
            let names = tls::certificate_names(&config.hostnames);
            for name in names.iter().filter(|n| !scope.permits(n)) {
                tracing::warn!(
                    %name,
                    "not a private or local address or name: phones cannot reach the app there \
                     with FieldMesh's certificate authority (see --tls-ca-unconstrained)"
                );
            }
            // Where the CA was kept before it moved out of the data folder: retired.
            let old = data_dir.join("tls");
            Some(tls::local_ca(&config.ca_dir(), Some(&old), &names, &scope)?)
        }
        (TlsMode::Off, _, _) => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let every_url = urls(scheme, address, &config.hostnames);
    let mut app_urls: Vec<String> = every_url
        .iter()
        .filter(|url| url_host(url).is_none_or(|host| scope.permits(host)))
        .cloned()
        .collect();
    if app_urls.is_empty() {
        // Bound to a public address only: say where it listens, even if phones will balk.
        app_urls = every_url;
    }

    let mut servers = tokio::task::JoinSet::new();
    let mut landing_urls = Vec::new();
    let mut handles = vec![app_handle.clone()];
    match &tls {
        Some(setup) => {
            let server = axum_server::from_tcp_rustls(
                listener,
                RustlsConfig::from_config(Arc::clone(&setup.config)),
            )?
            .map(|tls| tls.acceptor(admit.clone()));
            servers.spawn(bounded(server).handle(app_handle).serve(service));
            let landing_at = config
                .http_listen
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080)));
            let landing_listener = std::net::TcpListener::bind(landing_at)
                .with_context(|| format!("cannot listen on {landing_at}"))?;
            let landing_address = landing_listener.local_addr()?;
            let landing = Arc::new(Landing {
                app_urls: app_urls.clone(),
                ca_der: setup.ca_der.clone(),
                ca_pem: setup.ca_pem.clone(),
                ca_fingerprint: setup.ca_fingerprint.clone(),
            });
            let landing_handle = Handle::new();
            handles.push(landing_handle.clone());
            let landing_app = landing::router(landing).into_make_service();
            servers.spawn(
                bounded(axum_server::from_tcp(landing_listener)?.acceptor(admit.clone()))
                    .handle(landing_handle)
                    .serve(landing_app),
            );
            landing_urls = urls("http", landing_address, &config.hostnames);
            if let Some(url) = landing_urls.first() {
                println!("Phones start here (installs the certificate): {url}");
            }
            // An operator's own certificate needs no installing: phones go straight to the app.
            if setup.ca_der.is_none() {
                landing_urls.clear();
            }
            if let Some(fingerprint) = &setup.ca_fingerprint {
                println!("Certificate fingerprint (SHA-256): {fingerprint}");
            }
        }
        None => {
            if let Some(unused) = config.http_listen {
                let said = format!(
                    "--http-listen {unused} is not used with --tls off: there is no certificate \
                     to install, and the app itself is served over plain HTTP on --listen"
                );
                println!("{said}");
                tracing::warn!("{said}");
            }
            servers.spawn(
                bounded(axum_server::from_tcp(listener)?.acceptor(admit.clone()))
                    .handle(app_handle)
                    .serve(service),
            );
        }
    }
    for url in app_urls.iter().skip(1) {
        println!("Also at: {url}");
    }
    tracing::info!(%address, data_dir = %data_dir.display(), "listening");
    if !config.no_qr {
        // With FieldMesh's own certificate authority, the QR code leads to the landing page,
        // which installs it and links on to the app (the app's https:// address would show a
        // phone without it a "connection is not private" warning).
        let scanned = landing_urls
            .iter()
            .chain(&app_urls)
            .find(|u| !u.contains("localhost"));
        if let Some((url, code)) = scanned.and_then(|u| Some((u, terminal_qr(u)?))) {
            println!("The QR code below opens: {url}");
            println!("{code}");
        }
    }
    // Tests and scripts read this line to find the address.
    println!("FieldMesh is ready: open {}", app_urls[0]);

    tokio::select! {
        _ = wait_for_signal() => {}
        Some(result) = servers.join_next() => {
            result.context("server task failed")?.context("server failed")?;
        }
    }
    tracing::info!("shutting down: finishing open requests");
    let _ = shutdown.send(true);
    for handle in &handles {
        handle.graceful_shutdown(Some(GRACE));
    }
    while servers.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// A listener's time limits: a client sends its first request, and every request's headers,
/// within [`crate::admit::HEADER_TIMEOUT`], or the connection closes.
fn bounded<A: axum_server::Address, Acc>(
    mut server: axum_server::Server<A, Acc>,
) -> axum_server::Server<A, Acc> {
    server
        .http_builder()
        .http1()
        .header_read_timeout(crate::admit::HEADER_TIMEOUT);
    server.first_request_timeout(crate::admit::HEADER_TIMEOUT)
}

/// The addresses people can open: the bound one, or every LAN address and host name when
/// bound to all interfaces (the first is the one to show and scan).
fn urls(scheme: &str, address: SocketAddr, hostnames: &[String]) -> Vec<String> {
    let port = address.port();
    let format = |host: &str| format!("{scheme}://{host}:{port}/");
    if !address.ip().is_unspecified() {
        let host = match address.ip() {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        };
        return vec![format(&host)];
    }
    let mut urls: Vec<String> = tls::lan_addresses()
        .into_iter()
        .filter(|ip| ip.is_ipv4())
        .map(|ip| format(&ip.to_string()))
        .collect();
    urls.extend(hostnames.iter().map(|name| format(name)));
    urls.push(format("localhost"));
    urls
}

/// The host of one of [`urls`]' addresses.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.rsplit_once(':')?.0;
    Some(host.trim_start_matches('[').trim_end_matches(']'))
}

/// A QR code drawn with Unicode half blocks, light on dark so terminals show it scannable.
pub(crate) fn terminal_qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
