//! The QUIC transport of the mesh: endpoints, peer authentication, and
//! length-prefixed frames on one bidirectional stream per connection.
//!
//! It owns quinn, rustls and rcgen (architecture invariant: nothing outside
//! `mesh` imports them). It proves who is on the other end of a connection
//! and moves [`Frame`]s; it does not decide what to say (that is the sync
//! engine's job), it keeps no peer state beyond one connection, and it never
//! lets a frame through from a peer that has not authenticated.
//!
//! ## Authentication (DESIGN §3)
//!
//! TLS 1.3 runs with a fresh self-signed certificate per start, and either
//! side accepts any certificate: the TLS certificate is *not* the trust
//! anchor (the verifiers still check the handshake signatures, so each side
//! proves it holds the key of the certificate it showed). The OpenPGP
//! certificates in `certs/` are. Once the handshake is done, both sides
//! derive the connection's TLS exporter value ([`EXPORTER_LABEL`]), which
//! depends on the whole handshake transcript and secrets, so it differs
//! between any two connections. The dialer opens the stream and sends
//! [`Frame::Auth`] with its fingerprint and an OpenPGP signature over
//! [`auth_message`]`(Dialer, exporter)`; the listener checks it against its
//! trust store and either closes the connection with a [`CloseCode`] before
//! sending anything, or answers with its own `Auth` for the `Listener` role,
//! which the dialer checks the same way. A man-in-the-middle that terminates
//! TLS towards both sides sees two different exporter values, so it cannot
//! relay a signature from one session into the other.
//!
//! ## Frames
//!
//! Each frame is a `u32` big-endian length followed by
//! [`Frame::encode`]'s bytes. A length above [`MAX_FRAME_BYTES`] is refused
//! before any of the frame is read or allocated.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cer_proto::wire::{
    auth_message, DecodeError, Frame, Role, ALPN, EXPORTER_LABEL, EXPORTER_LEN, MAX_FRAME_BYTES,
};
use cer_proto::Fingerprint;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, IdleTimeout, ReadError, VarInt, WriteError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tracing::debug;

use crate::sign::{Identity, TrustStore, VerifyError};

/// How long a peer has to complete the TLS handshake and the `Auth`
/// exchange. Generous for satellite links (RTT up to ~1 s, some loss); a
/// silent address is given up on sooner, at [`IDLE_TIMEOUT`].
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(15);

/// Keep-alive interval: NAT bindings and thin links stay warm, and a live
/// peer is heard from several times within [`IDLE_TIMEOUT`] even when idle.
pub const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// A connection with no packet from the peer for this long is closed with
/// [`LinkClosed::TimedOut`]: a crashed peer's link is noticed within
/// seconds, while a live one misses four keep-alives in a row first.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-stream receive window, the in-flight limit of a catch-up on the
/// frame stream: 8 MiB covers ~100 Mbit/s at 600 ms RTT, far above what
/// the catch-up target needs (10,000 × 600 B/s).
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;

/// Connection-level receive and send windows: twice a stream's, so a
/// catch-up that fills its stream's window leaves the live stream as much
/// room again (a write there never waits for catch-up bytes to be acked).
const CONNECTION_WINDOW: u32 = 2 * STREAM_WINDOW;

/// While a dial has no answer, a fresh handshake starts this often, at
/// most [`PROBES`] times (within [`AUTH_TIMEOUT`]).
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBES: u32 = 6;

/// The live stream's priority over the frame stream (quinn sends the data
/// of higher-priority streams first).
const LIVE_PRIORITY: i32 = 1;

/// The TLS server name used by dialers. Meaningless: certificates are not
/// checked against it (see the module documentation).
const SERVER_NAME: &str = "cer";

/// Application error codes a connection is closed with, so the other side
/// can tell a refusal from a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CloseCode {
    /// Orderly close: shutdown, or the engine is done with the link.
    Normal = 0x00,
    /// The peer's fingerprint is not in the trust store.
    UnknownPeer = 0x10,
    /// The peer's `Auth` signature did not verify for this connection.
    BadAuth = 0x11,
    /// The peer broke the protocol: junk, oversized or unexpected frames.
    Protocol = 0x12,
    /// The dialer expected a different fingerprint at this address.
    UnexpectedPeer = 0x13,
    /// The peer misbehaved after authenticating (bad envelopes, flooding).
    Misbehaving = 0x14,
    /// Another link to the same peer already exists; this one is redundant.
    Duplicate = 0x15,
}

/// Why a link is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkClosed {
    /// This node closed it ([`LinkHandle::close`], [`Endpoint::close`]).
    Local,
    /// The peer closed it with an application code ([`CloseCode`] values,
    /// or anything else a newer peer sends).
    ByPeer { code: u64, reason: String },
    /// No packet from the peer within [`IDLE_TIMEOUT`]: the link is down.
    TimedOut,
    /// Stateless reset: the peer lost the connection's state (restarted).
    Reset,
    /// A QUIC or TLS transport error.
    Transport(String),
}

/// A transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("udp socket: {0}")]
    Io(#[from] io::Error),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("tls configuration: {0}")]
    Tls(String),
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// Nothing came back from the address: the peer is down, or the link
    /// to it.
    #[error("no answer from the peer")]
    Unreachable,
    #[error("{what} took longer than {}s", AUTH_TIMEOUT.as_secs())]
    Timeout { what: &'static str },
    #[error("refused: not trusted (peer {fingerprint} is not in the trust store)")]
    UnknownPeer { fingerprint: Fingerprint },
    #[error("peer authentication failed: {0}")]
    BadAuth(String),
    #[error("expected peer {expected}, got {got}")]
    UnexpectedPeer {
        expected: Fingerprint,
        got: Fingerprint,
    },
    #[error("frame of {size} bytes exceeds the maximum of {MAX_FRAME_BYTES}")]
    Oversized { size: usize },
    #[error("undecodable frame: {0}")]
    Decode(#[from] DecodeError),
    #[error("link closed: {0}")]
    Closed(LinkClosed),
    #[error("protocol violation: {0}")]
    Protocol(String),
}

/// A QUIC endpoint that both listens and dials. Cheap to clone; all clones
/// share the socket.
#[derive(Clone)]
pub struct Endpoint {
    inner: quinn::Endpoint,
    identity: Arc<Identity>,
}

/// An incoming connection that has not completed its handshake or
/// authenticated yet.
pub struct Accepting {
    incoming: quinn::Incoming,
    identity: Arc<Identity>,
}

/// An authenticated connection with its frame stream.
pub struct Link {
    /// The peer's authenticated primary fingerprint.
    pub peer: Fingerprint,
    pub remote: SocketAddr,
    /// This node's role on the connection.
    pub role: Role,
    sender: FrameSender,
    receiver: FrameReceiver,
    handle: LinkHandle,
}

/// The sending half of a link's frame stream.
pub struct FrameSender {
    stream: quinn::SendStream,
    counters: Arc<Counters>,
}

/// The receiving half of a link's frame stream. [`FrameReceiver::recv`] is
/// cancel-safe: a partly read frame is kept for the next call.
pub struct FrameReceiver {
    stream: quinn::RecvStream,
    counters: Arc<Counters>,
    header: [u8; 4],
    header_len: usize,
    /// Set once the length prefix is complete: the frame's size and the
    /// bytes read so far.
    body: Option<(usize, Vec<u8>)>,
}

/// Controls and observes a link from anywhere; cheap to clone.
#[derive(Clone)]
pub struct LinkHandle {
    conn: quinn::Connection,
    counters: Arc<Counters>,
}

/// A link's traffic so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Frame bytes including their 4-byte length prefixes.
    pub frame_bytes_sent: u64,
    pub frame_bytes_received: u64,
    /// What actually went over the network: UDP payload bytes, QUIC and
    /// TLS overhead, acknowledgements and retransmissions included.
    pub udp_bytes_sent: u64,
    pub udp_bytes_received: u64,
    pub udp_datagrams_sent: u64,
    pub udp_datagrams_received: u64,
    pub lost_packets: u64,
    pub rtt: Duration,
}

impl CloseCode {
    pub const fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(code: u64) -> Option<CloseCode> {
        [
            CloseCode::Normal,
            CloseCode::UnknownPeer,
            CloseCode::BadAuth,
            CloseCode::Protocol,
            CloseCode::UnexpectedPeer,
            CloseCode::Misbehaving,
            CloseCode::Duplicate,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// What the code means, in words for the log: the peer closed the
    /// link because…
    pub fn meaning(self) -> &'static str {
        match self {
            CloseCode::Normal => "closed",
            CloseCode::UnknownPeer => "refused: not trusted (this node is not in its trust store)",
            CloseCode::BadAuth => "refused: authentication failed",
            CloseCode::Protocol => "refused: protocol violation",
            CloseCode::UnexpectedPeer => "refused: it is not the node expected at this address",
            CloseCode::Misbehaving => "disconnected for misbehaving",
            CloseCode::Duplicate => "closed a duplicate link",
        }
    }

    fn var_int(self) -> VarInt {
        VarInt::from_u32(self as u32)
    }
}

impl LinkClosed {
    /// The code the peer closed with, if it closed with one we know.
    pub fn peer_code(&self) -> Option<CloseCode> {
        match self {
            LinkClosed::ByPeer { code, .. } => CloseCode::from_code(*code),
            _ => None,
        }
    }
}

impl fmt::Display for LinkClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkClosed::Local => f.write_str("closed locally"),
            LinkClosed::ByPeer { code, reason } => {
                match CloseCode::from_code(*code) {
                    Some(known) => write!(f, "the peer {}", known.meaning())?,
                    None => write!(f, "closed by the peer (code {code:#x})")?,
                }
                // The peer's own words, unless they only repeat the code's.
                let reason = reason.trim();
                if reason.is_empty() || *code == CloseCode::UnknownPeer.code() {
                    Ok(())
                } else {
                    write!(f, ": {}", cer_proto::text::escape(reason))
                }
            }
            LinkClosed::TimedOut => f.write_str("timed out"),
            LinkClosed::Reset => f.write_str("reset by peer"),
            LinkClosed::Transport(e) => write!(f, "transport error: {e}"),
        }
    }
}

impl From<ConnectionError> for LinkClosed {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::ApplicationClosed(close) => LinkClosed::ByPeer {
                code: close.error_code.into_inner(),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            ConnectionError::LocallyClosed => LinkClosed::Local,
            ConnectionError::TimedOut => LinkClosed::TimedOut,
            ConnectionError::Reset => LinkClosed::Reset,
            other => LinkClosed::Transport(other.to_string()),
        }
    }
}

/// The mesh's UDP socket, bound before the node's identity is at hand, so
/// that start-up can fail on a taken port before it creates anything.
pub struct Socket(std::net::UdpSocket);

impl Socket {
    /// Binds `addr` (port 0 for any).
    pub fn bind(addr: SocketAddr) -> Result<Socket, MeshError> {
        Ok(Socket(std::net::UdpSocket::bind(addr)?))
    }
}

impl Endpoint {
    /// Binds a UDP socket at `addr` (port 0 for any) that accepts and dials
    /// `cer/1` connections as `identity`.
    pub fn bind(addr: SocketAddr, identity: Arc<Identity>) -> Result<Endpoint, MeshError> {
        Endpoint::on_socket(Socket::bind(addr)?, identity)
    }

    /// Accepts and dials `cer/1` connections on `socket` as `identity`.
    pub fn on_socket(socket: Socket, identity: Arc<Identity>) -> Result<Endpoint, MeshError> {
        // Idempotent: an error only means a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (server_tls, client_tls) = tls_configs(provider)?;
        let transport = Arc::new(transport_config());

        let server_crypto =
            QuicServerConfig::try_from(server_tls).map_err(|e| MeshError::Tls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());

        let client_crypto =
            QuicClientConfig::try_from(client_tls).map_err(|e| MeshError::Tls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(client_crypto));
        client.transport_config(transport);

        let mut inner = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket.0,
            Arc::new(quinn::TokioRuntime),
        )?;
        inner.set_default_client_config(client);
        Ok(Endpoint { inner, identity })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, MeshError> {
        Ok(self.inner.local_addr()?)
    }

    /// Dials `addr`, authenticates both ways against `trust`, and, if
    /// `expect` is given, refuses any other peer.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        trust: &TrustStore,
        expect: Option<&Fingerprint>,
    ) -> Result<Link, MeshError> {
        within_auth_timeout("dial", async {
            let conn = self.handshake(addr).await?;
            let result = self.dial_auth(&conn, trust, expect).await;
            if let Err(e) = &result {
                close_for(&conn, e);
            }
            result
        })
        .await
    }

    /// Waits for the next incoming connection; `None` once the endpoint is
    /// closed. Cancel-safe.
    pub async fn accept(&self) -> Option<Accepting> {
        let incoming = self.inner.accept().await?;
        Some(Accepting {
            incoming,
            identity: self.identity.clone(),
        })
    }

    /// Closes every connection with [`CloseCode::Normal`] and stops
    /// accepting. Use [`Endpoint::wait_idle`] to let the close frames go out.
    pub fn close(&self) {
        self.inner.close(CloseCode::Normal.var_int(), b"shutdown");
    }

    /// Waits until every connection is closed and drained (bounded by the
    /// idle timeout).
    pub async fn wait_idle(&self) {
        self.inner.wait_idle().await;
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// The QUIC handshake with `addr`. Over a link that drops everything
    /// (a partition, a peer down), one handshake's retransmissions back off
    /// to seconds apart; so while none has completed, a fresh one starts
    /// every [`PROBE_INTERVAL`], and the first to complete is the one used
    /// (the others are dropped before anything is said on them). A link
    /// that comes back is found within about that interval.
    async fn handshake(&self, addr: SocketAddr) -> Result<quinn::Connection, MeshError> {
        let mut attempts = tokio::task::JoinSet::new();
        let mut started = 0;
        let mut next_probe = tokio::time::Instant::now();
        loop {
            if started < PROBES && tokio::time::Instant::now() >= next_probe {
                let connecting = self
                    .inner
                    .connect(addr, SERVER_NAME)
                    .map_err(|e| MeshError::Connect(e.to_string()))?;
                attempts.spawn(connecting);
                started += 1;
                next_probe += PROBE_INTERVAL;
            }
            let probe = started < PROBES;
            tokio::select! {
                done = attempts.join_next() => match done {
                    Some(Ok(Ok(conn))) => return Ok(conn),
                    Some(Ok(Err(ConnectionError::TimedOut))) if probe || !attempts.is_empty() => {}
                    Some(Ok(Err(e))) => return Err(handshake_error(e)),
                    Some(Err(e)) => return Err(MeshError::Connect(e.to_string())),
                    None if probe => tokio::time::sleep_until(next_probe).await,
                    None => return Err(MeshError::Unreachable),
                },
                () = tokio::time::sleep_until(next_probe), if probe => {}
            }
        }
    }

    async fn dial_auth(
        &self,
        conn: &quinn::Connection,
        trust: &TrustStore,
        expect: Option<&Fingerprint>,
    ) -> Result<Link, MeshError> {
        let exporter = exporter(conn)?;
        let (send, recv) = conn.open_bi().await.map_err(closed)?;
        let counters = Arc::new(Counters::default());
        let mut sender = FrameSender::new(send, counters.clone());
        let mut receiver = FrameReceiver::new(recv, counters.clone());
        sender
            .send(&auth_frame(&self.identity, Role::Dialer, &exporter))
            .await?;
        let frame = receiver.recv().await?.ok_or_else(|| {
            MeshError::Protocol("stream ended before the listener authenticated".into())
        })?;
        let peer = verify_auth(frame, trust, Role::Listener, &exporter)?;
        if let Some(expected) = expect {
            if *expected != peer {
                return Err(MeshError::UnexpectedPeer {
                    expected: expected.clone(),
                    got: peer,
                });
            }
        }
        if peer == *self.identity.fingerprint() {
            return Err(MeshError::Protocol("connected to itself".into()));
        }
        debug!(%peer, remote = %conn.remote_address(), "dialed peer authenticated");
        Ok(Link::new(
            peer,
            Role::Dialer,
            conn.clone(),
            sender,
            receiver,
        ))
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.inner.local_addr().ok())
            .field("identity", self.identity.fingerprint())
            .finish()
    }
}

impl Accepting {
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Refuses the connection without a handshake (e.g. at capacity).
    pub fn refuse(self) {
        self.incoming.refuse();
    }

    /// Completes the handshake and authenticates the dialer against
    /// `trust`. On failure the connection is closed with the matching
    /// [`CloseCode`] before anything is sent to the dialer.
    pub async fn authenticate(self, trust: &TrustStore) -> Result<Link, MeshError> {
        let Accepting { incoming, identity } = self;
        within_auth_timeout("accept", async {
            let connecting = incoming.accept().map_err(handshake_error)?;
            let conn = connecting.await.map_err(handshake_error)?;
            let result = listen_auth(&conn, &identity, trust).await;
            if let Err(e) = &result {
                close_for(&conn, e);
            }
            result
        })
        .await
    }
}

impl Link {
    /// The frame stream's halves and a handle to the connection.
    pub fn split(self) -> (FrameSender, FrameReceiver, LinkHandle) {
        (self.sender, self.receiver, self.handle)
    }

    pub fn handle(&self) -> LinkHandle {
        self.handle.clone()
    }

    fn new(
        peer: Fingerprint,
        role: Role,
        conn: quinn::Connection,
        sender: FrameSender,
        receiver: FrameReceiver,
    ) -> Link {
        let handle = LinkHandle {
            counters: sender.counters.clone(),
            conn,
        };
        Link {
            peer,
            remote: handle.conn.remote_address(),
            role,
            sender,
            receiver,
            handle,
        }
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.peer)
            .field("remote", &self.remote)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl FrameSender {
    /// Writes one frame. Returns once quinn has buffered it (flow control
    /// permitting), not when the peer has it.
    ///
    /// Not cancel-safe: dropping the future mid-frame leaves a partial
    /// frame on the stream, which the peer reads as junk. Own the sender in
    /// one task and feed it through a channel.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), MeshError> {
        let body = frame.encode();
        if body.len() > MAX_FRAME_BYTES {
            return Err(MeshError::Oversized { size: body.len() });
        }
        let prefix = u32::try_from(body.len())
            .map_err(|_| MeshError::Oversized { size: body.len() })?
            .to_be_bytes();
        self.stream.write_all(&prefix).await.map_err(write_error)?;
        self.stream.write_all(&body).await.map_err(write_error)?;
        self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.counters
            .frame_bytes_sent
            .fetch_add((prefix.len() + body.len()) as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Ends the stream after everything sent so far: the peer's `recv`
    /// returns `Ok(None)` once it has read it all.
    pub fn finish(&mut self) -> Result<(), MeshError> {
        self.stream
            .finish()
            .map_err(|_| MeshError::Closed(LinkClosed::Local))
    }

    fn new(stream: quinn::SendStream, counters: Arc<Counters>) -> Self {
        FrameSender { stream, counters }
    }
}

impl FrameReceiver {
    /// Reads the next frame; `Ok(None)` when the peer finished the stream
    /// cleanly between frames. Errors are final: after one, drop the link.
    ///
    /// Cancel-safe: it can sit in a `select!`; a frame whose bytes have
    /// partly arrived is completed by the next call.
    pub async fn recv(&mut self) -> Result<Option<Frame>, MeshError> {
        loop {
            let want = match &self.body {
                None => self.header.len() - self.header_len,
                Some((size, body)) => size - body.len(),
            };
            if want > 0 {
                let Some(chunk) = self
                    .stream
                    .read_chunk(want, true)
                    .await
                    .map_err(read_error)?
                else {
                    return if self.header_len == 0 {
                        Ok(None)
                    } else {
                        Err(MeshError::Protocol("stream ended inside a frame".into()))
                    };
                };
                self.counters
                    .frame_bytes_received
                    .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
                match &mut self.body {
                    None => {
                        let end = self.header_len + chunk.bytes.len();
                        self.header[self.header_len..end].copy_from_slice(&chunk.bytes);
                        self.header_len = end;
                    }
                    Some((_, body)) => body.extend_from_slice(&chunk.bytes),
                }
            }
            match &mut self.body {
                None if self.header_len == self.header.len() => {
                    let size = u32::from_be_bytes(self.header) as usize;
                    if size > MAX_FRAME_BYTES {
                        return Err(MeshError::Oversized { size });
                    }
                    // Grows as bytes arrive (capped), so a peer announcing a
                    // large frame and sending nothing costs little.
                    self.body = Some((size, Vec::with_capacity(size.min(64 * 1024))));
                }
                Some((size, body)) if body.len() == *size => {
                    let body = std::mem::take(body);
                    self.body = None;
                    self.header_len = 0;
                    self.counters
                        .frames_received
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(Frame::decode(&body)?));
                }
                _ => {}
            }
        }
    }

    fn new(stream: quinn::RecvStream, counters: Arc<Counters>) -> Self {
        FrameReceiver {
            stream,
            counters,
            header: [0; 4],
            header_len: 0,
            body: None,
        }
    }
}

impl LinkHandle {
    /// Opens this side's live stream: a unidirectional stream of frames
    /// that quinn sends ahead of the frame stream's, so live envelopes do
    /// not wait behind a catch-up. The peer sees it when the first frame
    /// arrives ([`LinkHandle::accept_live`]).
    pub async fn open_live(&self) -> Result<FrameSender, MeshError> {
        let stream = self.conn.open_uni().await.map_err(closed)?;
        stream
            .set_priority(LIVE_PRIORITY)
            .map_err(|_| MeshError::Closed(LinkClosed::Local))?;
        Ok(FrameSender::new(stream, self.counters.clone()))
    }

    /// The peer's live stream, once its first frame arrives. Cancel-safe.
    pub async fn accept_live(&self) -> Result<FrameReceiver, MeshError> {
        let stream = self.conn.accept_uni().await.map_err(closed)?;
        Ok(FrameReceiver::new(stream, self.counters.clone()))
    }

    /// Closes the connection at once with `code` and `reason` (kept under
    /// 1 KiB to fit one packet). Frames not yet delivered may be lost:
    /// to end gracefully, send `Goodbye`, `finish` the sender, and let the
    /// peer close.
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.conn.close(code.var_int(), reason.as_bytes());
    }

    /// Resolves when the connection is closed, for whatever reason.
    pub async fn closed(&self) -> LinkClosed {
        self.conn.closed().await.into()
    }

    /// Why the connection is closed, or `None` while it is open.
    pub fn close_reason(&self) -> Option<LinkClosed> {
        self.conn.close_reason().map(Into::into)
    }

    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    pub fn stats(&self) -> LinkStats {
        let quic = self.conn.stats();
        LinkStats {
            frames_sent: self.counters.frames_sent.load(Ordering::Relaxed),
            frames_received: self.counters.frames_received.load(Ordering::Relaxed),
            frame_bytes_sent: self.counters.frame_bytes_sent.load(Ordering::Relaxed),
            frame_bytes_received: self.counters.frame_bytes_received.load(Ordering::Relaxed),
            udp_bytes_sent: quic.udp_tx.bytes,
            udp_bytes_received: quic.udp_rx.bytes,
            udp_datagrams_sent: quic.udp_tx.datagrams,
            udp_datagrams_received: quic.udp_rx.datagrams,
            lost_packets: quic.path.lost_packets,
            rtt: quic.path.rtt,
        }
    }
}

impl fmt::Debug for LinkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkHandle")
            .field("remote", &self.conn.remote_address())
            .finish_non_exhaustive()
    }
}

/// Frame counters shared by a link's halves and handles.
#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    frame_bytes_sent: AtomicU64,
    frame_bytes_received: AtomicU64,
}

/// Accepts any certificate, but checks that the peer signed the handshake
/// with that certificate's key. Identity comes from the OpenPGP `Auth`
/// exchange bound to the exporter value, not from the certificate.
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AnyCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AnyCertificate")
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ClientCertVerifier for AnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS 1.3 only, ALPN `cer/1`, a fresh self-signed certificate used both
/// as server certificate and client certificate, no session resumption
/// (every connection runs a full handshake with both certificates).
fn tls_configs(
    provider: Arc<CryptoProvider>,
) -> Result<(Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>), MeshError> {
    let tls = |e: rustls::Error| MeshError::Tls(e.to_string());
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
        .map_err(|e| MeshError::Tls(format!("generating the certificate: {e}")))?;
    let cert = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der()));
    let verifier = Arc::new(AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });

    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(vec![cert.clone()], key.clone_key())
        .map_err(tls)?;
    server.alpn_protocols = vec![ALPN.to_vec()];
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(vec![cert], key)
        .map_err(tls)?;
    client.alpn_protocols = vec![ALPN.to_vec()];
    client.resumption = rustls::client::Resumption::disabled();

    Ok((Arc::new(server), Arc::new(client)))
}

fn transport_config() -> quinn::TransportConfig {
    let mut config = quinn::TransportConfig::default();
    config
        .keep_alive_interval(Some(KEEP_ALIVE))
        .max_idle_timeout(Some(
            IdleTimeout::try_from(IDLE_TIMEOUT).expect("10 s fits an idle timeout"),
        ))
        // One frame stream per connection, opened by the dialer, and one
        // live stream each way (see `LinkHandle::open_live`); nothing else
        // may be opened.
        .max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(1))
        .stream_receive_window(VarInt::from_u32(STREAM_WINDOW))
        .receive_window(VarInt::from_u32(CONNECTION_WINDOW))
        .send_window(u64::from(CONNECTION_WINDOW));
    // BBR paces by the measured bottleneck rather than halving its window
    // at every loss. Over 300 ms RTT with 5 % random loss (a satellite
    // link), a catch-up of 5,000 envelopes took 115 s with quinn's default
    // (Cubic, 43 envelopes/s) and 5.7 s with BBR (876/s): loss there is
    // noise, not congestion.
    config.congestion_controller_factory(Arc::new(quinn::congestion::BbrConfig::default()));
    config
}

/// The listener's half of authentication: read the dialer's `Auth`, check
/// it, answer with ours.
async fn listen_auth(
    conn: &quinn::Connection,
    identity: &Identity,
    trust: &TrustStore,
) -> Result<Link, MeshError> {
    let exporter = exporter(conn)?;
    let (send, recv) = conn.accept_bi().await.map_err(closed)?;
    let counters = Arc::new(Counters::default());
    let mut sender = FrameSender::new(send, counters.clone());
    let mut receiver = FrameReceiver::new(recv, counters.clone());
    let frame = receiver.recv().await?.ok_or_else(|| {
        MeshError::Protocol("stream ended before the dialer authenticated".into())
    })?;
    let peer = verify_auth(frame, trust, Role::Dialer, &exporter)?;
    if peer == *identity.fingerprint() {
        return Err(MeshError::Protocol("connected to itself".into()));
    }
    sender
        .send(&auth_frame(identity, Role::Listener, &exporter))
        .await?;
    debug!(%peer, remote = %conn.remote_address(), "accepted peer authenticated");
    Ok(Link::new(
        peer,
        Role::Listener,
        conn.clone(),
        sender,
        receiver,
    ))
}

fn exporter(conn: &quinn::Connection) -> Result<[u8; EXPORTER_LEN], MeshError> {
    let mut exporter = [0u8; EXPORTER_LEN];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .map_err(|_| MeshError::Handshake("cannot derive the TLS exporter value".into()))?;
    Ok(exporter)
}

fn auth_frame(identity: &Identity, role: Role, exporter: &[u8; EXPORTER_LEN]) -> Frame {
    Frame::Auth {
        fingerprint: identity.fingerprint().clone(),
        signature: identity.sign_auth(&auth_message(role, exporter)),
    }
}

/// Checks a peer's `Auth` frame for `role` on the connection whose
/// exporter value is `exporter`; returns the authenticated fingerprint.
fn verify_auth(
    frame: Frame,
    trust: &TrustStore,
    role: Role,
    exporter: &[u8; EXPORTER_LEN],
) -> Result<Fingerprint, MeshError> {
    let Frame::Auth {
        fingerprint,
        signature,
    } = frame
    else {
        return Err(MeshError::Protocol(
            "first frame is not an authentication frame".into(),
        ));
    };
    if trust.get(&fingerprint).is_none() {
        return Err(MeshError::UnknownPeer { fingerprint });
    }
    // After a key rotation the signature holds the new key's packet and
    // the previous key's: a peer that has not yet adopted the new key
    // (it learns it from the transition this link will carry) verifies
    // the previous one, which it still accepts; one that has adopted it
    // verifies the new one. One that verifies is enough.
    let message = auth_message(role, exporter);
    let verified = match crate::sign::split_signatures(&signature) {
        Ok(packets) => packets
            .iter()
            .map(|packet| trust.verify_detached(&message, packet))
            .reduce(|first, next| match first {
                Ok(signer) if signer == fingerprint => Ok(signer),
                _ => next,
            })
            .unwrap_or(Err(VerifyError::Unsigned)),
        Err(e) => Err(e),
    };
    match verified {
        Ok(signer) if signer == fingerprint => Ok(fingerprint),
        Ok(signer) => Err(MeshError::BadAuth(format!(
            "claims to be {fingerprint} but signed as {signer}"
        ))),
        Err(VerifyError::BadSignature { .. }) => Err(MeshError::BadAuth(format!(
            "signature by {fingerprint} does not match this connection"
        ))),
        Err(e) => Err(MeshError::BadAuth(format!("{fingerprint}: {e}"))),
    }
}

/// Closes a connection whose authentication failed, with the code the
/// other side will see.
fn close_for(conn: &quinn::Connection, error: &MeshError) {
    let code = match error {
        MeshError::UnknownPeer { .. } => CloseCode::UnknownPeer,
        MeshError::BadAuth(_) => CloseCode::BadAuth,
        MeshError::UnexpectedPeer { .. } => CloseCode::UnexpectedPeer,
        MeshError::Oversized { .. } | MeshError::Decode(_) | MeshError::Protocol(_) => {
            CloseCode::Protocol
        }
        // Already closed, or a local failure: nothing useful to tell.
        _ => CloseCode::Normal,
    };
    debug!(remote = %conn.remote_address(), ?code, %error, "authentication failed");
    let mut reason = error.to_string();
    // Keep the reason within one packet.
    if reason.len() > 512 {
        let mut end = 512;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    conn.close(code.var_int(), reason.as_bytes());
}

async fn within_auth_timeout<T>(
    what: &'static str,
    future: impl std::future::Future<Output = Result<T, MeshError>>,
) -> Result<T, MeshError> {
    tokio::time::timeout(AUTH_TIMEOUT, future)
        .await
        .unwrap_or(Err(MeshError::Timeout { what }))
}

fn handshake_error(error: ConnectionError) -> MeshError {
    match error {
        ConnectionError::TimedOut => MeshError::Unreachable,
        // The peer's application dropped the connection before the
        // handshake completed (a dialer's spare handshake, or a shutdown):
        // a close, not a failure.
        ConnectionError::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::APPLICATION_ERROR =>
        {
            MeshError::Closed(LinkClosed::ByPeer {
                code: CloseCode::Normal as u64,
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            })
        }
        // A refusal by the peer's application is not a handshake failure.
        ConnectionError::ApplicationClosed(_) | ConnectionError::LocallyClosed => closed(error),
        other => MeshError::Handshake(other.to_string()),
    }
}

fn closed(error: ConnectionError) -> MeshError {
    MeshError::Closed(error.into())
}

fn read_error(error: ReadError) -> MeshError {
    match error {
        ReadError::ConnectionLost(e) => closed(e),
        ReadError::ClosedStream => MeshError::Closed(LinkClosed::Local),
        ReadError::Reset(code) => MeshError::Protocol(format!("peer reset the stream ({code})")),
        other => MeshError::Protocol(other.to_string()),
    }
}

fn write_error(error: WriteError) -> MeshError {
    match error {
        WriteError::ConnectionLost(e) => closed(e),
        WriteError::ClosedStream => MeshError::Closed(LinkClosed::Local),
        WriteError::Stopped(code) => {
            MeshError::Protocol(format!("peer stopped reading the stream ({code})"))
        }
        other => MeshError::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::wire::Tip;

    struct Node {
        endpoint: Endpoint,
        identity: Arc<Identity>,
    }

    fn node(name: &str) -> Node {
        let identity = Arc::new(Identity::generate(name).expect("generate identity"));
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), identity.clone())
            .expect("bind endpoint");
        Node { endpoint, identity }
    }

    fn trusting(nodes: &[&Node]) -> TrustStore {
        let mut trust = TrustStore::new();
        for node in nodes {
            trust.insert(node.identity.public_cert());
        }
        trust
    }

    fn addr(node: &Node) -> SocketAddr {
        node.endpoint.local_addr().unwrap()
    }

    /// Accepts one connection on `node` and authenticates it.
    async fn accept_one(node: &Node, trust: &TrustStore) -> Result<Link, MeshError> {
        let accepting = node.endpoint.accept().await.expect("endpoint open");
        accepting.authenticate(trust).await
    }

    /// A dialer and a listener that trust each other, linked.
    async fn linked() -> (Node, Node, Link, Link) {
        let a = node("A-CERT");
        let b = node("B-CERT");
        let trust = trusting(&[&a, &b]);
        let (dialed, accepted) = tokio::join!(
            a.endpoint
                .connect(addr(&b), &trust, Some(b.identity.fingerprint())),
            accept_one(&b, &trust),
        );
        (a, b, dialed.unwrap(), accepted.unwrap())
    }

    fn summary(seq: u64) -> Frame {
        Frame::Summary {
            tips: vec![Tip {
                author: Fingerprint::parse(&"AB".repeat(20)).unwrap(),
                seq,
                id: cer_proto::EnvelopeId::of(b"x"),
            }],
        }
    }

    fn peer_code(error: &MeshError) -> Option<CloseCode> {
        match error {
            MeshError::Closed(closed) => closed.peer_code(),
            _ => None,
        }
    }

    #[tokio::test]
    async fn trusted_peers_exchange_frames_both_ways() {
        let (a, b, dialed, accepted) = linked().await;
        assert_eq!(dialed.peer, *b.identity.fingerprint());
        assert_eq!(dialed.role, Role::Dialer);
        assert_eq!(dialed.remote, addr(&b));
        assert_eq!(accepted.peer, *a.identity.fingerprint());
        assert_eq!(accepted.role, Role::Listener);

        let (mut a_tx, mut a_rx, a_handle) = dialed.split();
        let (mut b_tx, mut b_rx, b_handle) = accepted.split();
        for seq in 1..=100 {
            a_tx.send(&summary(seq)).await.unwrap();
        }
        for seq in 1..=100 {
            assert_eq!(b_rx.recv().await.unwrap(), Some(summary(seq)));
        }
        let goodbye = Frame::Goodbye {
            reason: "done".into(),
        };
        b_tx.send(&goodbye).await.unwrap();
        assert_eq!(a_rx.recv().await.unwrap(), Some(goodbye));

        // A finished stream reads as a clean end.
        a_tx.finish().unwrap();
        assert_eq!(b_rx.recv().await.unwrap(), None);

        let stats = a_handle.stats();
        assert_eq!(stats.frames_sent, 101, "auth + 100 summaries");
        assert_eq!(stats.frames_received, 2, "auth + goodbye");
        assert_eq!(
            stats.frame_bytes_sent,
            b_handle.stats().frame_bytes_received
        );
        assert!(stats.udp_bytes_sent > stats.frame_bytes_sent);

        b_handle.close(CloseCode::Normal, "bye");
        assert_eq!(
            a_handle.closed().await,
            LinkClosed::ByPeer {
                code: 0,
                reason: "bye".into()
            }
        );
        assert_eq!(b_handle.close_reason(), Some(LinkClosed::Local));
    }

    #[tokio::test]
    async fn unknown_dialer_is_refused_before_any_data() {
        let a = node("A-CERT");
        let b = node("B-CERT");
        // A trusts B, but B does not know A.
        let trust = trusting(&[&b]);
        let (dialed, accepted) = tokio::join!(
            a.endpoint.connect(addr(&b), &trust, None),
            accept_one(&b, &trust),
        );
        match accepted {
            Err(MeshError::UnknownPeer { fingerprint }) => {
                assert_eq!(fingerprint, *a.identity.fingerprint())
            }
            other => panic!("listener should report UnknownPeer, got {other:?}"),
        }
        let error = dialed.expect_err("dialer must be refused");
        assert_eq!(peer_code(&error), Some(CloseCode::UnknownPeer), "{error}");
    }

    #[tokio::test]
    async fn unknown_listener_is_refused_by_the_dialer() {
        let a = node("A-CERT");
        let b = node("B-CERT");
        // B trusts A, but A does not know B.
        let trust = trusting(&[&a]);
        let (dialed, accepted) = tokio::join!(
            a.endpoint.connect(addr(&b), &trust, None),
            accept_one(&b, &trust),
        );
        assert!(
            matches!(dialed, Err(MeshError::UnknownPeer { ref fingerprint }) if fingerprint == b.identity.fingerprint()),
            "{dialed:?}"
        );
        // B's link is up, but A closed it at once.
        let (_tx, mut rx, _handle) = accepted.unwrap().split();
        let error = rx.recv().await.expect_err("closed by the dialer");
        assert_eq!(peer_code(&error), Some(CloseCode::UnknownPeer), "{error}");
    }

    #[tokio::test]
    async fn expected_fingerprint_mismatch_is_refused() {
        let a = node("A-CERT");
        let b = node("B-CERT");
        let c = node("C-CERT");
        let trust = trusting(&[&a, &b, &c]);
        let (dialed, accepted) = tokio::join!(
            a.endpoint
                .connect(addr(&b), &trust, Some(c.identity.fingerprint())),
            accept_one(&b, &trust),
        );
        match dialed {
            Err(MeshError::UnexpectedPeer { expected, got }) => {
                assert_eq!(expected, *c.identity.fingerprint());
                assert_eq!(got, *b.identity.fingerprint());
            }
            other => panic!("expected UnexpectedPeer, got {other:?}"),
        }
        let (_tx, mut rx, _handle) = accepted.unwrap().split();
        let error = rx.recv().await.expect_err("closed by the dialer");
        assert_eq!(
            peer_code(&error),
            Some(CloseCode::UnexpectedPeer),
            "{error}"
        );
    }

    /// M terminates TLS towards A and towards B and relays A's `Auth`
    /// verbatim. B trusts A, but the signature covers A–M's exporter, not
    /// M–B's, so B refuses.
    #[tokio::test]
    async fn man_in_the_middle_relaying_auth_is_refused() {
        let a = node("A-CERT");
        let b = node("B-CERT");
        let m = node("MALLORY");
        let trust = trusting(&[&a, &b]);

        let relay = async {
            // Towards A: accept the handshake and read A's Auth frame.
            let incoming = m.endpoint.accept().await.unwrap().incoming;
            let from_a = incoming.accept().unwrap().await.unwrap();
            let (_a_send, a_recv) = from_a.accept_bi().await.unwrap();
            let mut a_rx = FrameReceiver::new(a_recv, Arc::default());
            let a_auth = a_rx.recv().await.unwrap().unwrap();
            // Towards B: dial and forward it.
            let to_b = m
                .endpoint
                .inner
                .connect(addr(&b), SERVER_NAME)
                .unwrap()
                .await
                .unwrap();
            let (b_send, b_recv) = to_b.open_bi().await.unwrap();
            FrameSender::new(b_send, Arc::default())
                .send(&a_auth)
                .await
                .unwrap();
            let mut b_rx = FrameReceiver::new(b_recv, Arc::default());
            let answer = b_rx.recv().await;
            from_a.close(CloseCode::Normal.var_int(), b"relay done");
            answer
        };
        let (dialed, accepted, relayed) = tokio::join!(
            a.endpoint.connect(addr(&m), &trust, None),
            accept_one(&b, &trust),
            relay,
        );
        assert!(
            matches!(accepted, Err(MeshError::BadAuth(_))),
            "B must refuse the relayed Auth: {accepted:?}"
        );
        let error = relayed.expect_err("B sends nothing to the relay");
        assert_eq!(peer_code(&error), Some(CloseCode::BadAuth), "{error}");
        assert!(dialed.is_err(), "A never authenticates M");
    }

    #[tokio::test]
    async fn oversized_length_prefix_is_refused_without_reading() {
        let (_a, _b, dialed, accepted) = linked().await;
        let (mut tx, _rx, _ha) = dialed.split();
        let (_tx, mut rx, _hb) = accepted.split();
        // Only the prefix is sent: reading the announced body would hang.
        let size = MAX_FRAME_BYTES + 1;
        tx.stream
            .write_all(&(size as u32).to_be_bytes())
            .await
            .unwrap();
        let result = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("refused at once");
        assert!(
            matches!(result, Err(MeshError::Oversized { size: s }) if s == size),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn sender_refuses_an_oversized_frame() {
        let (_a, _b, dialed, _accepted) = linked().await;
        let (mut tx, _rx, _handle) = dialed.split();
        let frame = Frame::Goodbye {
            reason: "x".repeat(MAX_FRAME_BYTES + 1),
        };
        let result = tx.send(&frame).await;
        assert!(
            matches!(result, Err(MeshError::Oversized { .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn junk_frame_is_a_decode_error() {
        let (_a, _b, dialed, accepted) = linked().await;
        let (mut tx, _rx, _ha) = dialed.split();
        let (_tx, mut rx, _hb) = accepted.split();
        let junk = [0xffu8, 0xfe, 0xfd, 0xfc, 0xfb];
        tx.stream
            .write_all(&(junk.len() as u32).to_be_bytes())
            .await
            .unwrap();
        tx.stream.write_all(&junk).await.unwrap();
        let result = rx.recv().await;
        assert!(matches!(result, Err(MeshError::Decode(_))), "{result:?}");
    }

    #[tokio::test]
    async fn recv_survives_cancellation_mid_frame() {
        let (_a, _b, dialed, accepted) = linked().await;
        let (mut tx, _rx, _ha) = dialed.split();
        let (_tx, mut rx, _hb) = accepted.split();
        let frame = summary(7);
        let body = frame.encode();
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let (first, rest) = bytes.split_at(6);
        tx.stream.write_all(first).await.unwrap();
        // Half a frame arrives; the receive is cancelled while waiting.
        let cancelled = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
        assert!(cancelled.is_err(), "nothing complete yet");
        tx.stream.write_all(rest).await.unwrap();
        assert_eq!(rx.recv().await.unwrap(), Some(frame));
    }
}
