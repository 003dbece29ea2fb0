//! `fieldmesh-cli`: FieldMesh in a terminal, for a coordinator's laptop or a sensor script.
//!
//! It is a device like a phone: its own identity and room keys (in `device.json`, 0600, under
//! `--home` or the user's data directory), the same sealing, signatures and checks as the web
//! app (the `mesh` and `client` crates), and an outbox on disk, so `send` works with the
//! server away and the message goes out, once, when it is back.
//!
//! Exit codes: 0 done; 1 refused (by the server, or a local failure); 2 bad input (a link,
//! a room, an argument); 3 the server could not be reached (nothing that needs it was done);
//! 75 the message waits in the outbox (the server could not be reached; it goes out with the
//! next command that reaches it, or `sync`).

mod commands;
mod home;
mod link;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Why a command did not do all it was asked, and the exit code that says so.
#[derive(Debug)]
pub struct Exit {
    /// The process's exit code.
    pub code: u8,
    /// A sentence for the person.
    pub message: String,
}

impl Exit {
    /// Bad input: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    /// Refused by the server: exit code 1.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }

    /// Something local failed: exit code 1.
    pub fn broken(message: impl Into<String>) -> Self {
        Self::refused(message)
    }

    /// The server could not be reached: exit code 3.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self {
            code: 3,
            message: message.into(),
        }
    }

    /// Queued in the outbox, not delivered yet: exit code 75 (`EX_TEMPFAIL`).
    pub fn queued(message: impl Into<String>) -> Self {
        Self {
            code: 75,
            message: message.into(),
        }
    }
}

/// `N` fresh random bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system gives random bytes");
    bytes
}

#[derive(Parser)]
#[command(
    name = "fieldmesh-cli",
    version,
    about = "FieldMesh in a terminal: end-to-end encrypted rooms for scripts and laptops",
    long_about = None,
    max_term_width = 100,
    after_help = "Exit codes: 0 done, 1 refused, 2 bad input, 3 server unreachable, \
                  75 queued in the outbox (goes out with the next command that reaches the server)."
)]
struct Cli {
    /// The folder for this device's keys, rooms and outbox (default: the user's data
    /// directory, fieldmesh-cli).
    #[arg(long, global = true, env = "FIELDMESH_CLI_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join the room of an invite link (from the app: in the room, ⋮, Invite someone).
    Join {
        /// The whole link, https://HOST/#room=…&key=… ("-": read it from standard input, so
        /// the room key never shows in the process list).
        link: String,
        /// Your display name (needed the first time).
        #[arg(long)]
        name: Option<String>,
        /// The camp's join code, when its server asks for one (needed once per server).
        #[arg(long, conflicts_with = "code_file")]
        code: Option<String>,
        /// Read the join code from this file's first line (a code on the command line shows
        /// in the process list).
        #[arg(long, value_name = "FILE")]
        code_file: Option<PathBuf>,
        /// Trust this certificate authority (PEM, from the camp's landing page) instead of
        /// trusting the one the server shows on first use.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// List the rooms this device is in.
    Rooms,
    /// Print a room's invite link, for someone to join it (it holds the room's key: share it
    /// only with people who may read the room).
    Invite {
        /// The room.
        room: String,
    },
    /// Send a message (the words given, or standard input when none or "-").
    Send {
        /// The room (its name, or the start of its id).
        room: String,
        /// The text.
        text: Vec<String>,
        /// How long to try to reach the server before leaving the message in the outbox.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Send what waits in the outbox.
    Sync {
        /// How long to try.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Print a room's newest messages, then (with --follow) each new one as it arrives.
    Read {
        /// The room.
        room: String,
        /// Keep printing new messages (reconnecting when the server goes away).
        #[arg(long, short)]
        follow: bool,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// How many of the newest messages to print first.
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
    },
    /// Who is in a room now, with their safety codes.
    People {
        /// The room.
        room: String,
    },
    /// Mark someone verified after comparing safety codes with them in person.
    Verify {
        /// Their name (or the start of their key, as `people` prints it).
        who: String,
    },
    /// Write privately to someone seen in a room.
    Dm {
        /// Their name.
        name: String,
        /// The text (standard input when none or "-").
        text: Vec<String>,
        /// How long to try to reach the server before leaving the message in the outbox.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
    /// Write a room's messages to a file: JSON Lines or a printable HTML transcript.
    Export {
        /// The room.
        room: String,
        /// The format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// The file to write (standard output when not given).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// An export's format.
#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per message.
    Jsonl,
    /// A transcript to read or print.
    Html,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fieldmesh-cli: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => {
            eprintln!("fieldmesh-cli: {}", commands::clean(&exit.message));
            ExitCode::from(exit.code)
        }
    }
}

/// The first line of standard input (at most 4 KiB).
fn first_line_of_stdin() -> Result<String, Exit> {
    use std::io::{BufRead, Read};
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(4096)
        .read_line(&mut line)
        .map_err(|e| Exit::usage(format!("cannot read standard input: {e}")))?;
    Ok(line.trim().to_string())
}

async fn run(cli: Cli) -> Result<(), Exit> {
    let dir = match cli.home {
        Some(dir) => dir,
        None => dirs::data_dir()
            .ok_or_else(|| Exit::usage("no data directory here: give --home DIR"))?
            .join("fieldmesh-cli"),
    };
    let home = home::Home::open(dir)?;
    match cli.command {
        Command::Join {
            link,
            name,
            code,
            code_file,
            ca,
        } => {
            let link = match link.as_str() {
                "-" => first_line_of_stdin()?,
                _ => link,
            };
            let code = match code_file {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| Exit::usage(format!("cannot read {}: {e}", path.display())))?
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                ),
                None => code,
            };
            commands::join(&home, &link, name, code, ca).await
        }
        Command::Rooms => commands::rooms(&home),
        Command::Invite { room } => commands::invite(&home, &room),
        Command::Send { room, text, wait } => commands::send(&home, &room, &text, wait).await,
        Command::Sync { wait } => commands::sync(&home, wait).await,
        Command::Read {
            room,
            follow,
            json,
            limit,
        } => commands::read(&home, &room, follow, json, limit).await,
        Command::People { room } => commands::people(&home, &room).await,
        Command::Verify { who } => commands::verify(&home, &who),
        Command::Dm { name, text, wait } => commands::dm(&home, &name, &text, wait).await,
        Command::Export {
            room,
            format,
            output,
        } => commands::export(&home, &room, matches!(format, Format::Html), output).await,
    }
}
