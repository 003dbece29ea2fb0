//! Which connections the listeners take: at most so many at once, and at most so many from
//! one network address, so one device (or a script) cannot use up the laptop's open files and
//! lock everyone else out. Every accepted socket gets `TCP_NODELAY` (chat frames are small and
//! must not wait for Nagle's algorithm). A connection holds its place until its socket closes.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Default for `--max-connections`.
pub const MAX_CONNECTIONS: usize = 4096;
/// Default for `--max-connections-per-address`: a phone opens one WebSocket and a few HTTP
/// connections; a household router may put a dozen phones behind one address.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 256;
/// A client must send its request headers within this long (and a first request at all).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Open files kept free for the database, the radio, certificates and logs.
const FILES_IN_RESERVE: u64 = 128;

/// The places the listeners share.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    unlimited: Vec<IpAddr>,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Admission {
    /// At most `max_total` connections, `max_per_address` from one address, except from the
    /// `unlimited` addresses (trusted proxies, which carry many phones' connections).
    pub fn new(max_total: usize, max_per_address: usize, unlimited: Vec<IpAddr>) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_address: max_per_address.max(1),
            unlimited,
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `address`, or `None` when there is none.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<Place> {
        let mut held = self.held();
        let from_here = held.by_address.get(&address).copied().unwrap_or(0);
        let per_address_full =
            from_here >= self.max_per_address && !self.unlimited.contains(&address);
        if held.total >= self.max_total || per_address_full {
            return None;
        }
        held.total += 1;
        held.by_address.insert(address, from_here + 1);
        Some(Place {
            admission: Arc::clone(self),
            address,
        })
    }

    /// Connections held now.
    pub fn total(&self) -> usize {
        self.held().total
    }
}

/// One connection's place; given back when dropped.
#[derive(Debug)]
pub struct Place {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.admission.held();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.by_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                held.by_address.remove(&self.address);
            }
        }
    }
}

/// The acceptor that gives out places (innermost: TLS wraps it).
#[derive(Clone, Debug)]
pub struct Admit(pub Arc<Admission>);

impl<S> Accept<TcpStream, S> for Admit {
    type Stream = Admitted;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Admitted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.take(stream).map(|stream| (stream, service)))
    }
}

impl Admit {
    fn take(&self, stream: TcpStream) -> io::Result<Admitted> {
        stream.set_nodelay(true)?;
        let address = stream.peer_addr()?.ip();
        match self.0.admit(address) {
            Some(place) => Ok(Admitted {
                stream,
                _place: place,
            }),
            None => {
                tracing::debug!(%address, "connection refused: too many open");
                Err(io::Error::other("too many connections"))
            }
        }
    }
}

/// An accepted socket and its place.
#[derive(Debug)]
pub struct Admitted {
    stream: TcpStream,
    _place: Place,
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Raises this process's open-file limit as far as the system lets it (the usual 1,024 is
/// too few for a camp), and returns how many connections fit under it.
pub fn open_file_room(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        let target = (wanted as u64 + FILES_IN_RESERVE).min(limit.maximum.unwrap_or(u64::MAX));
        if limit.current.is_some_and(|current| current < target) {
            limit.current = Some(target);
            if let Err(error) = setrlimit(Resource::Nofile, limit) {
                tracing::warn!(%error, "could not raise the open-file limit");
            }
        }
        let current = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        let room = current.saturating_sub(FILES_IN_RESERVE) as usize;
        if room < wanted {
            tracing::warn!(
                open_files = current,
                connections = room,
                "the open-file limit allows fewer connections than --max-connections; raise \
                 it (LimitNOFILE= in the systemd unit, ulimit -n)"
            );
        }
        room.min(wanted).max(1)
    }
    #[cfg(not(unix))]
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_systemd_unit_leaves_room_for_every_connection_and_caps_memory() {
        let unit = include_str!("../../contrib/fieldmesh.service");
        let setting = |name: &str| {
            unit.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("{name} is set"))
                .to_string()
        };
        let files: u64 = setting("LimitNOFILE").parse().unwrap();
        assert!(files >= MAX_CONNECTIONS as u64 + FILES_IN_RESERVE);
        assert!(setting("MemoryMax").ends_with('M'));
    }

    #[test]
    fn places_are_bounded_per_address_and_in_all_and_given_back() {
        let admission = Admission::new(3, 2, Vec::new());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none(), "two per address");
        let _third = admission.admit(b).unwrap();
        assert!(admission.admit(b).is_none(), "three in all");
        drop(first);
        let _fourth = admission
            .admit(b)
            .expect("a closed connection frees its place");
        assert_eq!(admission.total(), 3);
    }

    #[test]
    fn a_trusted_proxy_is_not_held_to_the_per_address_bound_but_to_the_total() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let admission = Admission::new(5, 2, vec![proxy]);
        let places: Vec<_> = (0..5).map(|_| admission.admit(proxy).unwrap()).collect();
        assert!(admission.admit(proxy).is_none(), "the total still holds");
        drop(places);
        let other: IpAddr = "10.0.0.1".parse().unwrap();
        let _a = admission.admit(other).unwrap();
        let _b = admission.admit(other).unwrap();
        assert!(admission.admit(other).is_none(), "others keep their bound");
    }
}
