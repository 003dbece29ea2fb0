//! This camp's own NATS server, a leaf node of the hub: FieldMesh writes its configuration,
//! starts Debian's `nats-server` with it and starts it again if it stops, so an operator
//! needs two flags (the hub's address and a credentials file), not a NATS set-up.
//!
//! The leaf keeps this camp's stream on this machine (storing never waits on the link) and
//! carries the hub's JetStream API and every stream's catching-up over one outgoing
//! connection, which it makes again by itself whenever the link comes back.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use super::Credentials;
use crate::error::ServerError;

/// Lines of the leaf server's log kept to explain a failure.
const LOG_TAIL: usize = 12;

/// What the leaf needs.
#[derive(Debug, Clone)]
pub struct LeafConfig {
    /// The hub's leaf-node address (nats-leaf://HOST:7422).
    pub hub: String,
    /// How this camp logs in to the hub.
    pub credentials: Option<Credentials>,
    /// The `nats-server` program.
    pub program: PathBuf,
    /// Most bytes of JetStream storage on this machine.
    pub max_bytes: i64,
}

/// A running leaf server; stopped when dropped.
pub struct Leaf {
    port: u16,
    password: String,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Drop for Leaf {
    fn drop(&mut self) {
        // Dropping the task drops the child, which kills it.
        self.supervisor.abort();
    }
}

impl Leaf {
    /// Writes the configuration under `data_dir/nats/<camp>`, starts the server and waits
    /// until it listens; then watches it.
    pub async fn start(
        config: &LeafConfig,
        data_dir: &Path,
        camp_id: &str,
    ) -> Result<Self, ServerError> {
        let io = |context: String| move |source| ServerError::Io { context, source };
        let version = tokio::process::Command::new(&config.program)
            .arg("--version")
            .output()
            .await
            .map_err(|error| {
                ServerError::Refused(format!(
                    "--federation-hub needs NATS's server, {}, which could not be run ({error}): \
                     install Debian's package (apt-get install nats-server) or name it with \
                     --nats-server",
                    config.program.display()
                ))
            })?;
        tracing::info!(
            version = %String::from_utf8_lossy(&version.stdout).trim(),
            "federation: starting this camp's NATS leaf server"
        );
        let dir = data_dir.join("nats").join(camp_id);
        std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let conf_path = dir.join("leaf.conf");
        let pid_path = dir.join("leaf.pid");
        stop_stale(&pid_path, &conf_path);
        let port = free_port().map_err(io("cannot find a free port for NATS".into()))?;
        let mut password = [0u8; 18];
        getrandom::fill(&mut password)
            .map_err(|e| ServerError::Crypto(format!("no randomness: {e}")))?;
        let password = mesh::hex::encode(&password);
        let conf = leaf_conf(config, &dir, camp_id, port, &password, &pid_path);
        std::fs::write(&conf_path, conf)
            .map_err(io(format!("cannot write {}", conf_path.display())))?;
        let log = Arc::new(Mutex::new(std::collections::VecDeque::new()));
        let mut child = spawn(&config.program, &conf_path, &log)?;
        // Ready once it listens (or say why it stopped).
        let started = std::time::Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ServerError::Refused(format!(
                    "this camp's NATS leaf server stopped ({status}): {}",
                    tail(&log)
                )));
            }
            if started.elapsed() > Duration::from_secs(15) {
                return Err(ServerError::Refused(format!(
                    "this camp's NATS leaf server did not listen within 15 s: {}",
                    tail(&log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let program = config.program.clone();
        let supervisor = tokio::spawn(async move {
            loop {
                match child.wait().await {
                    Ok(status) => tracing::error!(
                        %status,
                        log = %tail(&log),
                        "federation: this camp's NATS leaf server stopped; starting it again"
                    ),
                    Err(error) => tracing::error!(%error, "federation: lost the NATS leaf server"),
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                child = loop {
                    match spawn(&program, &conf_path, &log) {
                        Ok(child) => break child,
                        Err(error) => {
                            tracing::error!(%error, "federation: cannot start the NATS leaf server");
                            tokio::time::sleep(Duration::from_secs(10)).await;
                        }
                    }
                };
            }
        });
        Ok(Self {
            port,
            password,
            supervisor,
        })
    }

    /// Where this server's NATS client connects.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// How it logs in (a password made for this run: nothing else on the machine can).
    pub fn credentials(&self) -> Credentials {
        Credentials::Password {
            user: "fieldmesh".into(),
            password: self.password.clone(),
        }
    }
}

/// The leaf server's configuration: JetStream in a domain of this camp's own, only this
/// machine as client, one leaf link to the hub.
fn leaf_conf(
    config: &LeafConfig,
    dir: &Path,
    camp_id: &str,
    port: u16,
    password: &str,
    pid_path: &Path,
) -> String {
    let remote = match &config.credentials {
        Some(Credentials::Password { user, password }) => {
            format!("url: {}", quoted(&with_user(&config.hub, user, password)))
        }
        Some(Credentials::CredsFile(path)) => format!(
            "url: {}\n      credentials: {}",
            quoted(&config.hub),
            quoted(&path.to_string_lossy())
        ),
        None => format!("url: {}", quoted(&config.hub)),
    };
    format!(
        "# Written by FieldMesh at each start: changes here are lost.\n\
         server_name: {name}\n\
         listen: \"127.0.0.1:{port}\"\n\
         pid_file: {pid}\n\
         jetstream {{\n  store_dir: {store}\n  domain: {domain}\n  max_memory_store: 16MB\n  max_file_store: {bytes}\n}}\n\
         authorization {{\n  user: \"fieldmesh\"\n  password: {password}\n}}\n\
         leafnodes {{\n  reconnect: 2\n  remotes: [\n    {{\n      {remote}\n    }}\n  ]\n}}\n",
        name = quoted(&format!("fieldmesh-{camp_id}")),
        pid = quoted(&pid_path.to_string_lossy()),
        store = quoted(&dir.join("jetstream").to_string_lossy()),
        domain = quoted(&domain_of(camp_id)),
        bytes = config.max_bytes.max(64 * 1024 * 1024) * 2,
        password = quoted(password),
    )
}

/// The JetStream domain of a camp's leaf server.
pub fn domain_of(camp_id: &str) -> String {
    format!("fm{camp_id}")
}

/// `text` as a NATS configuration string.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `url` with a user and password in it (percent-encoded), as a leaf remote wants them.
fn with_user(url: &str, user: &str, password: &str) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}:{}@{rest}", encode(user), encode(password)),
        None => format!("nats-leaf://{}:{}@{url}", encode(user), encode(password)),
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the server, its log lines going to this server's log (debug) and to `log`.
fn spawn(
    program: &Path,
    conf: &Path,
    log: &Arc<Mutex<std::collections::VecDeque<String>>>,
) -> Result<tokio::process::Child, ServerError> {
    let mut child = tokio::process::Command::new(program)
        .arg("-c")
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ServerError::Io {
            context: format!("cannot start {}", program.display()),
            source,
        })?;
    if let Some(stderr) = child.stderr.take() {
        let log = Arc::clone(log);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "fieldmesh::nats", "{line}");
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                if log.len() >= LOG_TAIL {
                    log.pop_front();
                }
                log.push_back(line);
            }
        });
    }
    Ok(child)
}

fn tail(log: &Mutex<std::collections::VecDeque<String>>) -> String {
    let log = log.lock().unwrap_or_else(|p| p.into_inner());
    if log.is_empty() {
        return "it said nothing".into();
    }
    log.iter().cloned().collect::<Vec<_>>().join(" | ")
}

/// Stops a leaf server left running by an earlier run that was killed (it holds the store).
fn stop_stale(pid_path: &Path, conf_path: &Path) {
    let Some(pid) = std::fs::read_to_string(pid_path)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
    else {
        return;
    };
    let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("nats-server")
                && cmdline.contains(conf_path.to_string_lossy().as_ref())
        })
        .unwrap_or(false);
    let Some(pid) = rustix::process::Pid::from_raw(pid).filter(|_| ours) else {
        return;
    };
    tracing::warn!(
        pid = pid.as_raw_nonzero().get(),
        "federation: stopping a NATS leaf server an earlier run left"
    );
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    for _ in 0..50 {
        if !Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_with_odd_characters_goes_into_the_url_encoded() {
        assert_eq!(
            with_user("nats-leaf://hub.example:7422", "camp-a", "p@ss:w/rd"),
            "nats-leaf://camp-a:p%40ss%3Aw%2Frd@hub.example:7422"
        );
        assert_eq!(quoted("a\"b\\c\nd"), "\"a\\\"b\\\\c d\"");
    }
}
