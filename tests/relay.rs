//! A UDP relay that impairs one link, for fault tests and benchmarks.
//!
//! QUIC runs over UDP and this kernel has no `netem`, so a link between
//! two nodes is made to misbehave by putting a relay in the middle: the
//! dialer's `[[peer]] addr` names the relay, which forwards each datagram
//! to the listener and each answer back, after applying the link's
//! [`Profile`]: a fixed delay plus jitter, random and burst loss
//! (Gilbert–Elliott), duplication, reordering, a bandwidth limit (a token
//! bucket with a bounded queue) and a partition switch. Everything it did
//! is counted per direction, so a test can check that the fault really
//! happened.
//!
//! Self-contained (std and `rand` only): the integration tests declare it
//! as a module, benchmarks include it with `#[path]`.

#![allow(dead_code)] // each user takes the part it needs

use std::collections::BinaryHeap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How one link misbehaves; the same in both directions. The default is a
/// clean link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// One-way delay (a round trip is twice this).
    pub delay: Duration,
    /// Added to each datagram's delay: uniform in `0..=jitter`. Jitter
    /// larger than the gap between datagrams reorders them.
    pub jitter: Duration,
    /// Chance that a datagram is lost while the link is in its good state.
    pub loss: f64,
    /// Burst loss, Gilbert–Elliott: the chance per datagram of entering
    /// the bad state, of leaving it, and of loss while in it.
    pub burst: Option<Burst>,
    /// Chance that a datagram is delivered twice.
    pub duplicate: f64,
    /// Chance that a datagram is held back by `reorder_gap` beyond its
    /// delay, so later ones overtake it.
    pub reorder: f64,
    pub reorder_gap: Duration,
    /// Bytes per second in each direction; `None` is unlimited. Datagrams
    /// wait their turn in a queue of at most `queue_bytes` (then dropped).
    pub bandwidth: Option<u64>,
    pub queue_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burst {
    pub enter: f64,
    pub leave: f64,
    pub loss: f64,
}

impl Profile {
    /// A link with `rtt` round trip and random loss `loss` each way.
    pub fn lossy(rtt: Duration, loss: f64) -> Profile {
        Profile {
            delay: rtt / 2,
            loss,
            ..Profile::default()
        }
    }
}

/// What one direction of the relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams received on this direction's side.
    pub received: u64,
    /// Datagrams sent on (duplicates included).
    pub forwarded: u64,
    pub forwarded_bytes: u64,
    /// Lost to random or burst loss.
    pub dropped: u64,
    /// Dropped because the link was partitioned.
    pub partitioned: u64,
    /// Dropped because the bandwidth queue was full.
    pub overflowed: u64,
    pub duplicated: u64,
    pub reordered: u64,
}

impl Counts {
    /// Every datagram dropped, whatever the reason.
    pub fn lost(&self) -> u64 {
        self.dropped + self.partitioned + self.overflowed
    }
}

/// Both directions: `to_target` carries the dialer's datagrams, `to_client`
/// the answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub to_target: Counts,
    pub to_client: Counts,
}

impl Stats {
    pub fn forwarded(&self) -> u64 {
        self.to_target.forwarded + self.to_client.forwarded
    }

    pub fn lost(&self) -> u64 {
        self.to_target.lost() + self.to_client.lost()
    }
}

/// One relayed link. Dropping it stops its threads and closes its sockets.
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// A relay on 127.0.0.1 forwarding to `target` with `profile`; `seed`
    /// makes its random choices repeatable.
    pub fn start(target: SocketAddr, profile: Profile, seed: u64) -> Relay {
        let front = UdpSocket::bind("127.0.0.1:0").expect("relay front socket");
        let back = UdpSocket::bind("127.0.0.1:0").expect("relay back socket");
        back.connect(target).expect("relay back socket connects");
        for socket in [&front, &back] {
            // The receive threads look at the stop flag this often.
            socket
                .set_read_timeout(Some(Duration::from_millis(50)))
                .expect("read timeout");
        }
        let addr = front.local_addr().expect("relay address");
        let shared = Arc::new(Shared {
            profile: Mutex::new(profile),
            partitioned: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            client: Mutex::new(None),
            counts: [Counters::default(), Counters::default()],
            lanes: Mutex::new([Lane::new(seed), Lane::new(seed ^ 0x9e37_79b9_7f4a_7c15)]),
        });
        let front = Arc::new(front);
        let back = Arc::new(back);
        let mut threads = Vec::new();
        for (dir, from) in [
            (Dir::ToTarget, front.clone()),
            (Dir::ToClient, back.clone()),
        ] {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("relay-recv-{dir:?}"))
                    .spawn(move || receive(&shared, &from, dir))
                    .expect("relay thread"),
            );
        }
        {
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("relay-send".into())
                    .spawn(move || deliver(&shared, &front, &back))
                    .expect("relay thread"),
            );
        }
        Relay {
            addr,
            target,
            shared,
            threads,
        }
    }

    /// A clean relay to `target` (no delay, no loss) that can be
    /// partitioned.
    pub fn clean(target: SocketAddr) -> Relay {
        Relay::start(target, Profile::default(), 0)
    }

    /// The address a dialer uses instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Changes the link's behaviour from now on (queued datagrams keep
    /// their times).
    pub fn set_profile(&self, profile: Profile) {
        *lock(&self.shared.profile) = profile;
    }

    /// Drops every datagram in both directions until [`Relay::heal`],
    /// including those already queued.
    pub fn partition(&self) {
        self.shared.partitioned.store(true, Ordering::SeqCst);
        let mut queue = lock(&self.shared.queue);
        for held in queue.heap.drain() {
            self.shared.counts[held.dir as usize]
                .partitioned
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn heal(&self) {
        self.shared.partitioned.store(false, Ordering::SeqCst);
    }

    pub fn is_partitioned(&self) -> bool {
        self.shared.partitioned.load(Ordering::SeqCst)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            to_target: self.shared.counts[Dir::ToTarget as usize].snapshot(),
            to_client: self.shared.counts[Dir::ToClient as usize].snapshot(),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToTarget = 0,
    ToClient = 1,
}

struct Shared {
    profile: Mutex<Profile>,
    partitioned: AtomicBool,
    stop: AtomicBool,
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Where answers go: the dialer's address, learned from its datagrams.
    client: Mutex<Option<SocketAddr>>,
    counts: [Counters; 2],
    lanes: Mutex<[Lane; 2]>,
}

/// Per-direction state of the random choices and the token bucket.
struct Lane {
    rng: StdRng,
    bad: bool,
    /// When the bandwidth limit lets the next datagram leave.
    free_at: Option<Instant>,
}

impl Lane {
    fn new(seed: u64) -> Lane {
        Lane {
            rng: StdRng::seed_from_u64(seed),
            bad: false,
            free_at: None,
        }
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    forwarded_bytes: AtomicU64,
    dropped: AtomicU64,
    partitioned: AtomicU64,
    overflowed: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            received: get(&self.received),
            forwarded: get(&self.forwarded),
            forwarded_bytes: get(&self.forwarded_bytes),
            dropped: get(&self.dropped),
            partitioned: get(&self.partitioned),
            overflowed: get(&self.overflowed),
            duplicated: get(&self.duplicated),
            reordered: get(&self.reordered),
        }
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Held>,
    /// Breaks ties so datagrams due at the same instant keep their order.
    next: u64,
}

/// A datagram waiting for its time.
struct Held {
    due: Instant,
    order: u64,
    dir: Dir,
    bytes: Vec<u8>,
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    /// Reversed: the heap's top is the earliest due.
    fn cmp(&self, other: &Held) -> std::cmp::Ordering {
        (other.due, other.order).cmp(&(self.due, self.order))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one side's socket and schedules what survives the profile.
fn receive(shared: &Shared, socket: &UdpSocket, dir: Dir) {
    let mut buf = vec![0u8; 65_536];
    let counts = &shared.counts[dir as usize];
    while !shared.stop.load(Ordering::SeqCst) {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue, // timeout (checks the stop flag) or ICMP noise
        };
        counts.received.fetch_add(1, Ordering::Relaxed);
        if dir == Dir::ToTarget {
            *lock(&shared.client) = Some(from);
        }
        if shared.partitioned.load(Ordering::SeqCst) {
            counts.partitioned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let profile = lock(&shared.profile).clone();
        let now = Instant::now();
        let mut lanes = lock(&shared.lanes);
        let lane = &mut lanes[dir as usize];
        // Gilbert–Elliott: the state moves first, then this datagram's fate.
        let mut loss = profile.loss;
        if let Some(burst) = profile.burst {
            let flip = if lane.bad { burst.leave } else { burst.enter };
            if lane.rng.gen_bool(flip.clamp(0.0, 1.0)) {
                lane.bad = !lane.bad;
            }
            if lane.bad {
                loss = burst.loss;
            }
        }
        if lane.rng.gen_bool(loss.clamp(0.0, 1.0)) {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // The token bucket: a datagram leaves when the link has sent the
        // ones before it; a queue longer than `queue_bytes` overflows.
        let mut leaves = now;
        if let Some(rate) = profile.bandwidth.filter(|r| *r > 0) {
            let free_at = lane.free_at.unwrap_or(now).max(now);
            let backlog = free_at.duration_since(now).as_secs_f64() * rate as f64;
            if profile.queue_bytes > 0 && backlog > profile.queue_bytes as f64 {
                counts.overflowed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let done = free_at + Duration::from_secs_f64(len as f64 / rate as f64);
            lane.free_at = Some(done);
            leaves = done;
        }
        let mut copies = 1;
        if lane.rng.gen_bool(profile.duplicate.clamp(0.0, 1.0)) {
            copies = 2;
            counts.duplicated.fetch_add(1, Ordering::Relaxed);
        }
        let mut queue = lock(&shared.queue);
        for _ in 0..copies {
            let mut due = leaves + profile.delay;
            if !profile.jitter.is_zero() {
                let extra = lane.rng.gen_range(0..=profile.jitter.as_micros() as u64);
                due += Duration::from_micros(extra);
            }
            if lane.rng.gen_bool(profile.reorder.clamp(0.0, 1.0)) {
                due += profile.reorder_gap;
                counts.reordered.fetch_add(1, Ordering::Relaxed);
            }
            let order = queue.next;
            queue.next += 1;
            queue.heap.push(Held {
                due,
                order,
                dir,
                bytes: buf[..len].to_vec(),
            });
        }
        drop(queue);
        shared.wake.notify_all();
    }
}

/// Sends each held datagram when it is due.
fn deliver(shared: &Shared, front: &UdpSocket, back: &UdpSocket) {
    let mut queue = lock(&shared.queue);
    while !shared.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let wait = match queue.heap.peek() {
            Some(held) if held.due <= now => None,
            Some(held) => Some(held.due - now),
            None => Some(Duration::from_millis(50)),
        };
        if let Some(wait) = wait {
            queue = shared
                .wake
                .wait_timeout(queue, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        let held = queue.heap.pop().expect("peeked");
        drop(queue);
        let counts = &shared.counts[held.dir as usize];
        if shared.partitioned.load(Ordering::SeqCst) {
            counts.partitioned.fetch_add(1, Ordering::Relaxed);
        } else {
            let sent = match held.dir {
                Dir::ToTarget => back.send(&held.bytes),
                Dir::ToClient => match *lock(&shared.client) {
                    Some(client) => front.send_to(&held.bytes, client),
                    None => Ok(0),
                },
            };
            if sent.is_ok() {
                counts.forwarded.fetch_add(1, Ordering::Relaxed);
                counts
                    .forwarded_bytes
                    .fetch_add(held.bytes.len() as u64, Ordering::Relaxed);
            }
        }
        queue = lock(&shared.queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP echo server on its own thread: answers every datagram.
    fn echo() -> (SocketAddr, Arc<AtomicBool>, JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stopped.load(Ordering::SeqCst) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..n], from);
                }
            }
        });
        (addr, stop, thread)
    }

    fn client() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        socket
    }

    /// Sends `n` numbered datagrams through the relay, 50 at a time (more
    /// at once would overflow the sockets' buffers, not the relay), and
    /// collects the echoes of each lot until `quiet` passes without one.
    fn round_trips(relay: &Relay, n: u32, quiet: Duration) -> Vec<u32> {
        let socket = client();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        for lot in (0..n).collect::<Vec<_>>().chunks(50) {
            for i in lot {
                socket.send_to(&i.to_be_bytes(), relay.addr()).unwrap();
            }
            let mut last = Instant::now();
            while last.elapsed() < quiet {
                if let Ok((4, _)) = socket.recv_from(&mut buf) {
                    got.push(u32::from_be_bytes(buf[..4].try_into().unwrap()));
                    last = Instant::now();
                }
            }
        }
        got
    }

    #[test]
    fn relay_delays_drops_duplicates_reorders_and_partitions() {
        let (target, stop, thread) = echo();

        // Clean: everything comes back, in order.
        let relay = Relay::clean(target);
        let got = round_trips(&relay, 200, Duration::from_millis(50));
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert_eq!(relay.stats().forwarded(), 400);

        // Delay: a round trip takes at least twice the one-way delay.
        relay.set_profile(Profile::lossy(Duration::from_millis(200), 0.0));
        let socket = client();
        let sent = Instant::now();
        socket.send_to(b"ping", relay.addr()).unwrap();
        let mut buf = [0u8; 8];
        let rtt = loop {
            if socket.recv_from(&mut buf).is_ok() {
                break sent.elapsed();
            }
            assert!(sent.elapsed() < Duration::from_secs(5), "no echo");
        };
        assert!(rtt >= Duration::from_millis(200), "{rtt:?}");

        // Loss: about 10 % each way, so about 19 % of round trips fail.
        relay.set_profile(Profile::lossy(Duration::ZERO, 0.10));
        let got = round_trips(&relay, 2000, Duration::from_millis(30));
        let lost = 2000 - got.len();
        assert!((200..=600).contains(&lost), "{lost} of 2000 lost");
        let stats = relay.stats();
        assert_eq!(
            stats.to_target.dropped + stats.to_client.dropped,
            lost as u64
        );

        // Bursts: losses come in runs.
        relay.set_profile(Profile {
            burst: Some(Burst {
                enter: 0.02,
                leave: 0.2,
                loss: 1.0,
            }),
            ..Profile::default()
        });
        let before = relay.stats().lost();
        let got = round_trips(&relay, 2000, Duration::from_millis(30));
        assert!(got.len() < 2000 && got.len() > 1000, "{}", got.len());
        let runs = got.windows(2).filter(|w| w[1] > w[0] + 1).count();
        let burst_lost = relay.stats().lost() - before;
        assert!(
            (burst_lost as usize) > 2 * runs,
            "{burst_lost} lost in {runs} gaps: not bursty"
        );

        // Duplication and reordering.
        relay.set_profile(Profile {
            duplicate: 0.5,
            reorder: 0.2,
            reorder_gap: Duration::from_millis(30),
            ..Profile::default()
        });
        let got = round_trips(&relay, 200, Duration::from_millis(100));
        assert!(got.len() > 250, "{} echoes: too few duplicates", got.len());
        assert!(got.windows(2).any(|w| w[1] < w[0]), "nothing reordered");
        let stats = relay.stats();
        assert!(stats.to_target.duplicated > 0 && stats.to_target.reordered > 0);

        // Partition: nothing passes, and it is counted; heal restores.
        relay.set_profile(Profile::default());
        relay.partition();
        assert!(round_trips(&relay, 50, Duration::from_millis(200)).is_empty());
        assert_eq!(relay.stats().to_target.partitioned, 50);
        relay.heal();
        assert_eq!(
            round_trips(&relay, 50, Duration::from_millis(200)).len(),
            50
        );

        drop(relay);
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap();
    }

    #[test]
    fn relay_limits_bandwidth() {
        let (target, stop, thread) = echo();
        // 50 kB/s each way: 50 datagrams of 1,000 bytes take about 1 s.
        let relay = Relay::start(
            target,
            Profile {
                bandwidth: Some(50_000),
                queue_bytes: 1_000_000,
                ..Profile::default()
            },
            1,
        );
        let socket = client();
        let started = Instant::now();
        for i in 0..50u32 {
            let mut datagram = vec![0u8; 1000];
            datagram[..4].copy_from_slice(&i.to_be_bytes());
            socket.send_to(&datagram, relay.addr()).unwrap();
        }
        let mut buf = [0u8; 2048];
        let mut got = 0;
        while got < 50 {
            if socket.recv_from(&mut buf).is_ok() {
                got += 1;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{got} of 50");
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(900), "{took:?}");
        // A short queue overflows instead.
        relay.set_profile(Profile {
            bandwidth: Some(50_000),
            queue_bytes: 10_000,
            ..Profile::default()
        });
        for _ in 0..50 {
            socket.send_to(&[0u8; 1000], relay.addr()).unwrap();
        }
        eventually_count(|| relay.stats().to_target.overflowed >= 30);
        drop(relay);
        stop.store(true, Ordering::SeqCst);
        thread.join().unwrap();
    }

    fn eventually_count(mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "condition not reached");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
