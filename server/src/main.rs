//! `fieldmesh`: parse the configuration, open the state, serve.

use anyhow::Context;
use clap::Parser;
use server::{serve, AppState, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Every file the server makes (database, journal, keys, passes) is its user's alone.
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).context("--log is not a valid filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let data_dir = config.data_dir();
    match &config.tool {
        Some(server::config::Tool::Export { room, output }) => {
            return server::archive::export_command(&data_dir, room.as_deref(), output.as_deref());
        }
        Some(server::config::Tool::Import { file }) => {
            return server::archive::import_command(&data_dir, file);
        }
        None => {}
    }
    if config.show_radio_key {
        let key = server::radio::network::load(&config, &data_dir)?
            .expect("a key is made when asked to show one");
        print!("{}", server::radio::network::show(&key));
        return Ok(());
    }
    let (mut state, shutdown) = AppState::new(&config, &data_dir).with_context(|| {
        format!(
            "cannot start with the data directory {}",
            data_dir.display()
        )
    })?;
    if let Some(path) = &config.map {
        state.map = Some(std::sync::Arc::new(
            server::map::RegionalMap::open(path).await?,
        ));
    }
    if let Some(federation) = config.federation()? {
        state.federation = Some(
            server::federation::Federation::start(
                federation,
                &data_dir,
                state.store.clone(),
                state.hub.clone(),
                state.radio.clone(),
                state.chunks.clone(),
            )
            .await?,
        );
    }
    if !state.site.has_app() {
        tracing::warn!(
            "this binary has no web app built in: build it with `./x run` or `./x build`"
        );
    }
    serve::serve(&config, state, &data_dir, shutdown).await
}
