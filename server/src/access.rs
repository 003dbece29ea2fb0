//! Who may use this server: the operator's optional join code (kept only as an argon2 hash),
//! device tokens handed out on unlock, and rate limits that slow down abuse without letting
//! anyone lock another person out.
//!
//! Limits are per device and per network address. A guesser is stopped after a few wrong codes
//! on their device and a few more on their address; everyone else keeps their own allowance.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use mesh::SenderId;
use sha2::{Digest, Sha256};

use crate::error::ServerError;
use crate::store::Store;

/// Wrong-code allowance per device (on one address): 5 tries, then one more every 30 seconds.
const UNLOCKS_PER_DEVICE: (u32, Duration) = (5, Duration::from_secs(30));
/// Wrong-code allowance per network address (several phones may share one): 20, then one more
/// every 15 seconds.
const UNLOCKS_PER_ADDRESS: (u32, Duration) = (20, Duration::from_secs(15));
/// New WebSocket connections per address: 30 at once, then 2 a second.
const CONNECTS_PER_ADDRESS: (u32, Duration) = (30, Duration::from_millis(500));
/// Messages per device and per address: an outbox of 2,000 drains at once, then 20 a second.
const PUBLISHES: (u32, Duration) = (2000, Duration::from_millis(50));

/// Messages to the public Emergency room, which anyone can write to, per device: 20 at once,
/// then one every 15 seconds; and per address (several phones may share one): 60, then one
/// every 5 seconds. A person posting news keeps well within it; one sender cannot bury the
/// room (a joining phone's first page is 50 messages).
const PUBLIC_PER_DEVICE: (u32, Duration) = (20, Duration::from_secs(15));
const PUBLIC_PER_ADDRESS: (u32, Duration) = (60, Duration::from_secs(5));
/// Bytes one device may store a day, in all rooms: 32 MiB (about 2,000 of the largest
/// messages; a person's text is a few hundred kilobytes a day), refilling steadily.
pub const DEVICE_BYTES_PER_DAY: u32 = 32 * 1024 * 1024;

/// Room requests per connection (join, leave, history pages, lending): 64 at once, then 8 a
/// second: a page's start and its private-conversation checks, but no flood of presence.
const ROOM_REQUESTS: (u32, Duration) = (64, Duration::from_millis(125));
/// Frames heard by a lent radio per connection: 200 at once, then 50 a second (more than any
/// LoRa radio hears).
const LENT_FRAMES: (u32, Duration) = (200, Duration::from_millis(20));

/// Pieces of files uploaded per address: 400 at once (a 100 MB photo album), then 4 a second
/// (about a megabyte a second, shared by the phones behind the address).
const CHUNK_UPLOADS: (u32, Duration) = (400, Duration::from_millis(250));

/// Radio receipts per connection: 100 at once (a page catching up on the radio), then 5 a
/// second; past that they are dropped (a receipt is best effort).
const RECEIPTS: (u32, Duration) = (100, Duration::from_millis(200));

/// Call signals per connection: 60 at once (joining a call of six, or a burst of
/// walkie-talkie presses), then 10 a second.
const SIGNALS: (u32, Duration) = (60, Duration::from_millis(100));

/// One connection's own allowances, for the frames that cost the server (and the room)
/// work: each frame past them is refused with the time to wait.
pub struct ConnectionLimits {
    room_requests: governor::DefaultDirectRateLimiter,
    lent_frames: governor::DefaultDirectRateLimiter,
    receipts: governor::DefaultDirectRateLimiter,
    signals: governor::DefaultDirectRateLimiter,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            room_requests: RateLimiter::direct(quota(ROOM_REQUESTS)),
            lent_frames: RateLimiter::direct(quota(LENT_FRAMES)),
            receipts: RateLimiter::direct(quota(RECEIPTS)),
            signals: RateLimiter::direct(quota(SIGNALS)),
        }
    }
}

fn direct_check(limiter: &governor::DefaultDirectRateLimiter) -> Result<(), RetryAfter> {
    limiter
        .check()
        .map_err(|not_until| RetryAfter(not_until.wait_time_from(DefaultClock::default().now())))
}

impl ConnectionLimits {
    /// A join, leave, history page or lending request.
    pub fn room_request(&self) -> Result<(), RetryAfter> {
        direct_check(&self.room_requests)
    }

    /// A frame the lent radio heard.
    pub fn lent_frame(&self) -> Result<(), RetryAfter> {
        direct_check(&self.lent_frames)
    }

    /// A radio receipt to send.
    pub fn receipt(&self) -> Result<(), RetryAfter> {
        direct_check(&self.receipts)
    }

    /// A call signal to pass on.
    pub fn signal(&self) -> Result<(), RetryAfter> {
        direct_check(&self.signals)
    }
}

pub(crate) fn quota((burst, every): (u32, Duration)) -> Quota {
    Quota::with_period(every)
        .expect("periods are non-zero")
        .allow_burst(NonZeroU32::new(burst).expect("bursts are non-zero"))
}

/// The rate limiters, keyed by address or device.
pub struct Limits {
    unlock_by_device: DefaultKeyedRateLimiter<(SenderId, IpAddr)>,
    unlock_by_address: DefaultKeyedRateLimiter<IpAddr>,
    connect_by_address: DefaultKeyedRateLimiter<IpAddr>,
    publish_by_device: DefaultKeyedRateLimiter<(SenderId, IpAddr)>,
    publish_by_address: DefaultKeyedRateLimiter<IpAddr>,
    public_by_device: DefaultKeyedRateLimiter<SenderId>,
    public_by_address: DefaultKeyedRateLimiter<IpAddr>,
    bytes_by_device: DefaultKeyedRateLimiter<SenderId>,
    chunks_by_address: DefaultKeyedRateLimiter<IpAddr>,
    chunks_by_device: DefaultKeyedRateLimiter<[u8; 16]>,
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64 (one device can hold a
/// whole /64 and would otherwise get fresh allowances by rotating addresses).
pub(crate) fn network(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(segments.into())
        }
    }
}

/// How long to wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// In whole milliseconds, at least one.
    pub fn millis(self) -> u32 {
        self.0.as_millis().clamp(1, u128::from(u32::MAX)) as u32
    }

    /// In whole seconds, at least one (for HTTP's Retry-After).
    pub fn seconds(self) -> u64 {
        self.0.as_secs_f64().ceil().max(1.0) as u64
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &DefaultKeyedRateLimiter<K>,
    key: &K,
) -> Result<(), RetryAfter> {
    limiter
        .check_key(key)
        .map_err(|not_until| RetryAfter(not_until.wait_time_from(DefaultClock::default().now())))
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(1)
    }
}

/// An allowance per address when `phones` share it: `phones` times the burst, refilling
/// `phones` times as fast.
fn shared((burst, every): (u32, Duration), phones: u32) -> (u32, Duration) {
    let phones = phones.max(1);
    (
        burst.saturating_mul(phones),
        (every / phones).max(Duration::from_nanos(1)),
    )
}

impl Limits {
    /// The limits when up to `phones_per_address` phones share one address (see
    /// `--phones-per-address`).
    pub fn new(phones_per_address: u32) -> Self {
        let per_address = |allowance| quota(shared(allowance, phones_per_address));
        Self {
            unlock_by_device: RateLimiter::keyed(quota(UNLOCKS_PER_DEVICE)),
            unlock_by_address: RateLimiter::keyed(per_address(UNLOCKS_PER_ADDRESS)),
            connect_by_address: RateLimiter::keyed(per_address(CONNECTS_PER_ADDRESS)),
            publish_by_device: RateLimiter::keyed(quota(PUBLISHES)),
            publish_by_address: RateLimiter::keyed(per_address(PUBLISHES)),
            public_by_device: RateLimiter::keyed(quota(PUBLIC_PER_DEVICE)),
            public_by_address: RateLimiter::keyed(per_address(PUBLIC_PER_ADDRESS)),
            chunks_by_address: RateLimiter::keyed(per_address(CHUNK_UPLOADS)),
            chunks_by_device: RateLimiter::keyed(quota(CHUNK_UPLOADS)),
            bytes_by_device: RateLimiter::keyed(
                Quota::with_period(Duration::from_secs(24 * 60 * 60) / DEVICE_BYTES_PER_DAY)
                    .expect("a day per byte allowance is non-zero")
                    .allow_burst(NonZeroU32::new(DEVICE_BYTES_PER_DAY).expect("non-zero")),
            ),
        }
    }
}

impl Limits {
    /// A new WebSocket connection from `address`.
    pub fn connect(&self, address: IpAddr) -> Result<(), RetryAfter> {
        check(&self.connect_by_address, &network(address))
    }

    /// An unlock attempt by `device` from `address`.
    ///
    /// The address is checked first, and a device's allowance is its own on each address, so
    /// nobody can use up another device's allowance by naming it from elsewhere.
    pub fn unlock(&self, device: SenderId, address: IpAddr) -> Result<(), RetryAfter> {
        let address = network(address);
        check(&self.unlock_by_address, &address)?;
        check(&self.unlock_by_device, &(device, address))
    }

    /// A message from `device` at `address`.
    pub fn publish(&self, device: SenderId, address: IpAddr) -> Result<(), RetryAfter> {
        let address = network(address);
        check(&self.publish_by_address, &address)?;
        check(&self.publish_by_device, &(device, address))
    }

    /// A message of `bytes` from `device` at `address` to the public room.
    pub fn public_room(&self, device: SenderId, address: IpAddr) -> Result<(), RetryAfter> {
        check(&self.public_by_address, &network(address))?;
        check(&self.public_by_device, &device)
    }

    /// A piece of a file uploaded from `address`, by `device` (a pass's hash) when the
    /// server has a join code: limited per address (shared by the phones behind it) and per
    /// device.
    pub fn chunk_upload(
        &self,
        address: IpAddr,
        device: Option<[u8; 16]>,
    ) -> Result<(), RetryAfter> {
        if let Some(device) = device {
            check(&self.chunks_by_device, &device)?;
        }
        check(&self.chunks_by_address, &network(address))
    }

    /// `bytes` more stored for `device`; `Err` when its daily allowance is used up.
    pub fn device_bytes(&self, device: SenderId, bytes: usize) -> Result<(), RetryAfter> {
        let cells =
            NonZeroU32::new(bytes.clamp(1, u32::MAX as usize) as u32).expect("at least one byte");
        match self.bytes_by_device.check_key_n(&device, cells) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(RetryAfter(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(RetryAfter(Duration::from_secs(24 * 60 * 60))),
        }
    }

    /// Forgets keys whose allowance is full again, so memory stays bounded.
    pub fn forget_idle(&self) {
        self.public_by_device.retain_recent();
        self.public_by_address.retain_recent();
        self.bytes_by_device.retain_recent();
        self.unlock_by_device.retain_recent();
        self.unlock_by_address.retain_recent();
        self.connect_by_address.retain_recent();
        self.publish_by_device.retain_recent();
        self.publish_by_address.retain_recent();
        self.chunks_by_address.retain_recent();
        self.chunks_by_device.retain_recent();
    }
}

/// The join code, if the operator set one.
pub struct JoinCode {
    /// PHC string of the argon2 hash.
    hash: String,
}

impl JoinCode {
    /// Sets up the code: keeps the stored hash (and so the devices already unlocked) when it
    /// still matches `code`, else hashes `code` anew and stores only the hash.
    pub fn set_up(code: &str, data_dir: &Path) -> Result<Self, ServerError> {
        let path = hash_path(data_dir);
        if let Ok(stored) = std::fs::read_to_string(&path) {
            let stored = stored.trim().to_string();
            if verify(&stored, code) {
                return Ok(Self { hash: stored });
            }
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(normalise(code).as_bytes(), &salt)
            .map_err(|e| ServerError::Crypto(format!("hashing the join code failed: {e}")))?
            .to_string();
        std::fs::write(&path, format!("{hash}\n")).map_err(|source| ServerError::Io {
            context: format!("cannot save the join code's hash to {}", path.display()),
            source,
        })?;
        Ok(Self { hash })
    }

    /// Whether `code` is the join code (slow on purpose: argon2).
    pub fn verify(&self, code: &str) -> bool {
        verify(&self.hash, code)
    }

    /// Identifies this code, so tokens made under an earlier code stop working.
    pub fn epoch(&self) -> Vec<u8> {
        Sha256::digest(self.hash.as_bytes()).to_vec()
    }
}

fn hash_path(data_dir: &Path) -> PathBuf {
    data_dir.join("join-code.argon2")
}

/// The join code as compared: capitals and extra spaces do not matter (a code read aloud or
/// off a sign is typed many ways on a phone keyboard).
fn normalise(code: &str) -> String {
    code.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn verify(hash: &str, code: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(normalise(code).as_bytes(), &parsed)
            .is_ok()
    })
}

/// Access control as a whole.
pub struct Access {
    /// The join code; `None` means the server is open to everyone on the network.
    pub code: Option<JoinCode>,
    /// The rate limiters.
    pub limits: Limits,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Access {
    /// Open access or a join code, with fresh limits for `phones_per_address`, believing the
    /// client address only from `trusted_proxies`.
    pub fn new(
        code: Option<JoinCode>,
        phones_per_address: u32,
        trusted_proxies: Vec<IpAddr>,
    ) -> Arc<Self> {
        Arc::new(Self {
            code,
            limits: Limits::new(phones_per_address),
            trusted_proxies,
        })
    }

    /// The address a request is limited by: the peer's, or, from a trusted proxy, the last
    /// address of its `X-Forwarded-For` (the one the proxy added; earlier ones came from the
    /// client and prove nothing).
    pub fn client_address(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        forwarded_for
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok())
            .unwrap_or(peer)
    }

    /// The address a request from `peer` with these `headers` is limited by (see
    /// [`Self::client_address`]).
    pub fn request_address(&self, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
        let forwarded_for = headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok());
        self.client_address(peer, forwarded_for)
    }

    /// Checks `code` for `device` and, when right, hands out a new device token.
    pub async fn unlock(
        &self,
        store: &Store,
        code: String,
        device: SenderId,
    ) -> Result<Option<[u8; 32]>, ServerError> {
        let Some(join_code) = &self.code else {
            return Ok(Some([0; 32]));
        };
        let hash = join_code.hash.clone();
        // argon2 takes tens of milliseconds: keep it off the async threads.
        let right = tokio::task::spawn_blocking(move || verify(&hash, &code)).await?;
        if !right {
            return Ok(None);
        }
        let mut token = [0u8; 32];
        getrandom::fill(&mut token)
            .map_err(|e| ServerError::Crypto(format!("no randomness: {e}")))?;
        let epoch = join_code.epoch();
        let token_hash = Sha256::digest(token).to_vec();
        store
            .run(move |s| s.add_device_token_blocking(&token_hash, &epoch, device))
            .await?;
        Ok(Some(token))
    }

    /// Whether `token` was handed out under the current code.
    pub async fn authenticate(&self, store: &Store, token: [u8; 32]) -> Result<bool, ServerError> {
        let Some(join_code) = &self.code else {
            return Ok(true);
        };
        let epoch = join_code.epoch();
        let token_hash = Sha256::digest(token).to_vec();
        store
            .run(move |s| s.has_device_token_blocking(&token_hash, &epoch))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_with_a_pass_has_its_own_upload_allowance_behind_a_shared_address() {
        // Ten phones behind one address: the address may send ten phones' worth, one device
        // only its own.
        let limits = Limits::new(10);
        let camp: IpAddr = "10.0.0.7".parse().unwrap();
        let (ana, ben) = ([1; 16], [2; 16]);
        let sent = (0..CHUNK_UPLOADS.0 + 10)
            .take_while(|_| limits.chunk_upload(camp, Some(ana)).is_ok())
            .count();
        assert_eq!(sent, CHUNK_UPLOADS.0 as usize);
        assert!(limits.chunk_upload(camp, Some(ben)).is_ok());
        assert!(limits.chunk_upload(camp, None).is_ok());
    }

    #[test]
    fn a_device_named_from_another_address_does_not_use_up_its_allowance() {
        let limits = Limits::default();
        let victim = SenderId([1; 32]);
        let attacker: IpAddr = "10.0.0.66".parse().unwrap();
        let home: IpAddr = "10.0.0.5".parse().unwrap();
        let mut refused = false;
        for _ in 0..10 {
            refused |= limits.unlock(victim, attacker).is_err();
        }
        assert!(refused, "the attacker is limited");
        assert!(
            limits.unlock(victim, home).is_ok(),
            "the victim, from their own address, is not"
        );
    }

    #[test]
    fn the_join_code_ignores_case_and_extra_spaces() {
        let dir = tempfile::tempdir().unwrap();
        let code = JoinCode::set_up("Blue Heron", dir.path()).unwrap();
        for typed in ["blue heron", "BLUE HERON", "  Blue   Heron ", "blue\theron"] {
            assert!(code.verify(typed), "{typed:?} is the code");
        }
        for typed in ["blueheron", "blue heron 2", "blue"] {
            assert!(!code.verify(typed), "{typed:?} is not");
        }
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_share_an_allowance() {
        assert_eq!(
            network("2001:db8::1".parse().unwrap()),
            network("2001:db8::ffff:1".parse().unwrap())
        );
        assert_ne!(
            network("2001:db8:0:1::1".parse().unwrap()),
            network("2001:db8:0:2::1".parse().unwrap())
        );
        assert_eq!(
            network("10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn allowances_per_address_grow_with_the_phones_that_share_it_and_per_device_ones_do_not() {
        let camp: IpAddr = "10.0.0.7".parse().unwrap();
        let alone = Limits::new(1);
        let refused = (0..200).filter(|_| alone.connect(camp).is_err()).count();
        assert!(
            refused >= 160,
            "30 at once for one address by default: {refused} refused"
        );
        let shared = Limits::new(10);
        assert!(
            (0..200).all(|_| shared.connect(camp).is_ok()),
            "300 at once for ten phones"
        );
        let device = SenderId([4; 32]);
        let tries = (0..10)
            .filter(|_| shared.unlock(device, camp).is_ok())
            .count();
        assert_eq!(tries, 5, "one device still gets its own five tries");
    }

    #[test]
    fn the_client_address_is_believed_from_a_trusted_proxy_only() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let phone: IpAddr = "192.168.4.20".parse().unwrap();
        let access = Access::new(None, 1, vec![proxy]);
        // The proxy appends the address it saw; what came before is the client's own claim.
        let header = Some("6.6.6.6, 192.168.4.20");
        assert_eq!(access.client_address(proxy, header), phone);
        assert_eq!(access.client_address(proxy, Some("not an address")), proxy);
        assert_eq!(access.client_address(proxy, None), proxy);
        // Anyone else's header is ignored: it would let a flooder pick fresh allowances.
        assert_eq!(access.client_address(phone, Some("6.6.6.6")), phone);
    }
}
