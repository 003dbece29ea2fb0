use anyhow::Context;
use clap::Parser;
use server::{app, AppState, Config};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).context("--log is not a valid filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    if !config.site_root.join("pkg").join("fieldmesh.wasm").exists() {
        tracing::warn!(
            site_root = %config.site_root.display(),
            "the web app is not built here; run `./x run`, or point --site-root at a built site"
        );
    }
    let (state, shutdown) = AppState::new(&config).context("cannot open the message store")?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let shown = if address.ip().is_unspecified() {
        format!("localhost:{}", address.port())
    } else {
        address.to_string()
    };
    tracing::info!(%address, data_dir = %config.data_dir.display(), "listening");
    // Tests and scripts read this line to find the port.
    println!("FieldMesh is ready: open http://{shown}/");

    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: closing connections");
            let _ = shutdown.send(true);
        })
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
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
