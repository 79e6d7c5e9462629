//! The sync state machine in an in-memory mesh: N nodes, each a `Sync`
//! with a fake store, joined by links that can drop, duplicate and reorder
//! frames, be cut and healed, under a virtual clock. No sockets, no
//! threads, no sleeping: a run is a function of its seed.
//!
//! Frames cross the links encoded and decoded, so the codec is exercised
//! with real envelopes, and bytes on the wire can be counted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cer_proto::envelope::{Body, ChainTip, Draft, DraftBody, Envelope, IncidentBody};
use cer_proto::model::{Affected, Classification, Severity, Status, Timestamp, Tlp};
use cer_proto::sync::{Action, Config, Sync};
use cer_proto::wire::{self, Frame, Item, WireTombstone};
use cer_proto::{EnvelopeId, Fingerprint};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

// ---------------------------------------------------------------- harness

/// What each node's driver does to the network.
#[derive(Debug, Clone, Copy)]
struct Faults {
    drop: f64,
    duplicate: f64,
    /// Frames on one link may overtake each other.
    reorder: bool,
    latency_ms: (u64, u64),
}

impl Faults {
    const NONE: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        reorder: false,
        latency_ms: (5, 50),
    };
}

/// Traffic from one node to another.
#[derive(Debug, Default, Clone, Copy)]
struct Traffic {
    frames: u64,
    summaries: u64,
    summary_tips: u64,
    wants: u64,
    envelope_frames: u64,
    /// Envelopes and tombstones, pushed or asked for.
    items: u64,
    /// Of which: pushed.
    pushed: u64,
    haves: u64,
    have_tips: u64,
    /// Frame bytes including the transport's 4-byte length prefix.
    bytes: u64,
    /// Of which: the Envelopes frames.
    envelope_frame_bytes: u64,
    /// The envelopes' own bytes and signatures in those frames.
    envelope_bytes: u64,
}

impl Traffic {
    fn add(&mut self, other: &Traffic) {
        self.frames += other.frames;
        self.summaries += other.summaries;
        self.summary_tips += other.summary_tips;
        self.wants += other.wants;
        self.envelope_frames += other.envelope_frames;
        self.items += other.items;
        self.pushed += other.pushed;
        self.haves += other.haves;
        self.have_tips += other.have_tips;
        self.bytes += other.bytes;
        self.envelope_frame_bytes += other.envelope_frame_bytes;
        self.envelope_bytes += other.envelope_bytes;
    }
}

struct Stored {
    id: EnvelopeId,
    item: Item,
}

struct Node {
    id: Fingerprint,
    sync: Sync,
    trusted: BTreeSet<Fingerprint>,
    /// Per author, seq 1.. contiguous: index = seq - 1.
    store: BTreeMap<Fingerprint, Vec<Stored>>,
    /// Ingests of something already held: must stay 0.
    stored_twice: u64,
    rejected: u64,
    /// Its driver spoils the signature of every envelope it sends.
    corrupt: bool,
}

impl Node {
    fn tip(&self, author: &Fingerprint) -> Option<(u64, EnvelopeId)> {
        let chain = self.store.get(author)?;
        chain.last().map(|last| (chain.len() as u64, last.id))
    }

    /// The fake store: accepts only the contiguous successor whose chain
    /// and (fake) signature check, like the real driver's verify step.
    fn ingest(&mut self, author: &Fingerprint, seq: u64, item: &Item) -> Result<EnvelopeId, ()> {
        assert!(self.trusted.contains(author), "ingest of untrusted author");
        let chain = self.store.entry(author.clone()).or_default();
        let held = chain.len() as u64;
        let tip = chain.last().map(|last| ChainTip {
            seq: held,
            id: last.id,
        });
        let id = match item {
            Item::Live { bytes, sig } => {
                let envelope = Envelope::parse(bytes).map_err(|_| ())?;
                if *sig != fake_sig(bytes) || envelope.author != *author || envelope.seq != seq {
                    return Err(());
                }
                if seq <= held {
                    let id = EnvelopeId::of(bytes);
                    if chain[seq as usize - 1].id == id {
                        self.stored_twice += 1;
                        return Ok(id);
                    }
                    return Err(());
                }
                envelope.check_follows(tip.as_ref()).map_err(|_| ())?;
                EnvelopeId::of(bytes)
            }
            Item::Tombstone(t) => {
                if t.author != *author || t.seq != seq {
                    return Err(());
                }
                if seq <= held {
                    if chain[seq as usize - 1].id == t.id {
                        self.stored_twice += 1;
                        return Ok(t.id);
                    }
                    return Err(());
                }
                if seq != held + 1 {
                    return Err(());
                }
                t.id
            }
        };
        chain.push(Stored {
            id,
            item: item.clone(),
        });
        Ok(id)
    }
}

struct Link {
    up: bool,
    epoch: u64,
    /// Per direction (low → high, high → low): when the last frame lands,
    /// so frames stay in order unless reordering is on.
    tail: [Instant; 2],
}

struct Msg {
    from: usize,
    to: usize,
    epoch: u64,
    bytes: Vec<u8>,
}

struct Net {
    nodes: Vec<Node>,
    index: BTreeMap<Fingerprint, usize>,
    links: BTreeMap<(usize, usize), Link>,
    queue: BTreeMap<(Instant, u64), Msg>,
    counter: u64,
    start: Instant,
    now: Instant,
    rng: StdRng,
    faults: Faults,
    traffic: BTreeMap<(usize, usize), Traffic>,
    /// Wants sent: (node, author) → count.
    wants: BTreeMap<(usize, Fingerprint), u64>,
    filings: u64,
    /// Envelopes the drivers flood (critical incidents).
    urgent: BTreeSet<(Fingerprint, u64)>,
}

fn node_id(i: usize) -> Fingerprint {
    Fingerprint::parse(&format!("{:02X}", i + 1).repeat(20)).unwrap()
}

fn fake_sig(bytes: &[u8]) -> Vec<u8> {
    let id = EnvelopeId::of(bytes);
    [id.as_bytes().as_slice(), id.as_bytes().as_slice()].concat()
}

fn envelope(author: &Fingerprint, seq: u64, prev: Option<EnvelopeId>) -> Vec<u8> {
    Draft {
        author: author.clone(),
        seq,
        prev,
        created: Timestamp::from_unix_nanos(1_800_000_000_000_000_000 + seq as i128),
        subject: Uuid::from_u128(seq as u128),
        tlp: Tlp::Green,
        recipients: vec![],
        body: DraftBody::Plain(Body::Incident(IncidentBody {
            title: format!("Phishing wave {seq} seen by {}", author.short()),
            description: "Credential phishing against ministries, lures in English and French."
                .into(),
            severity: Severity::High,
            classification: Classification::parse("fraud/phishing").unwrap(),
            status: Status::New,
            indicators: vec![],
            affected: Affected::default(),
            occurred: None,
            detected: None,
            tags: vec![],
            source: None,
        })),
        withdraws: vec![],
    }
    .to_bytes()
    .unwrap()
}

impl Net {
    /// `n` nodes, each trusting every node (as peer and author) unless
    /// `distrust` says otherwise: (node, author it does not trust).
    fn new(n: usize, seed: u64, config: Config, distrust: &[(usize, usize)]) -> Net {
        let start = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let trusted: BTreeSet<Fingerprint> = (0..n)
                    .filter(|a| !distrust.contains(&(i, *a)))
                    .map(node_id)
                    .collect();
                Node {
                    id: node_id(i),
                    sync: Sync::new(config.clone(), [], trusted.clone()),
                    trusted,
                    store: BTreeMap::new(),
                    stored_twice: 0,
                    rejected: 0,
                    corrupt: false,
                }
            })
            .collect();
        Net {
            nodes,
            index: (0..n).map(|i| (node_id(i), i)).collect(),
            links: BTreeMap::new(),
            queue: BTreeMap::new(),
            counter: 0,
            start,
            now: start,
            rng: StdRng::seed_from_u64(seed),
            faults: Faults::NONE,
            traffic: BTreeMap::new(),
            wants: BTreeMap::new(),
            filings: 0,
            urgent: BTreeSet::new(),
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        let now = self.now;
        let link = self.links.entry((a.min(b), a.max(b))).or_insert(Link {
            up: false,
            epoch: 0,
            tail: [now; 2],
        });
        if link.up {
            return;
        }
        link.up = true;
        link.epoch += 1;
        link.tail = [now; 2];
        let (id_a, id_b) = (self.nodes[a].id.clone(), self.nodes[b].id.clone());
        self.nodes[a].sync.handle_connected(id_b, now);
        self.nodes[b].sync.handle_connected(id_a, now);
        self.drive(a);
        self.drive(b);
    }

    fn disconnect(&mut self, a: usize, b: usize) {
        let Some(link) = self.links.get_mut(&(a.min(b), a.max(b))) else {
            return;
        };
        if !link.up {
            return;
        }
        link.up = false;
        let (id_a, id_b) = (self.nodes[a].id.clone(), self.nodes[b].id.clone());
        self.nodes[a].sync.handle_disconnected(&id_b);
        self.nodes[b].sync.handle_disconnected(&id_a);
    }

    fn connect_all(&mut self, edges: &[(usize, usize)]) {
        for &(a, b) in edges {
            self.connect(a, b);
        }
    }

    /// Node `i` files its next envelope, an urgent one (a critical
    /// incident, which every driver floods).
    fn file_urgent(&mut self, i: usize) {
        let author = self.nodes[i].id.clone();
        let seq = self.nodes[i].tip(&author).map_or(1, |(seq, _)| seq + 1);
        self.urgent.insert((author, seq));
        self.file(i);
    }

    /// Node `i` files its next envelope.
    fn file(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let author = node.id.clone();
        let (seq, prev) = match node.tip(&author) {
            Some((seq, id)) => (seq + 1, Some(id)),
            None => (1, None),
        };
        let bytes = envelope(&author, seq, prev);
        let id = EnvelopeId::of(&bytes);
        let sig = fake_sig(&bytes);
        node.store.entry(author.clone()).or_default().push(Stored {
            id,
            item: Item::Live { bytes, sig },
        });
        if self.urgent.contains(&(author.clone(), seq)) {
            node.sync
                .handle_stored_urgent(&author, seq, id, None, self.now);
        } else {
            node.sync.handle_stored(&author, seq, id, None, self.now);
        }
        self.filings += 1;
        self.drive(i);
    }

    /// Node `i` holds a tombstone instead of `author`'s envelope `seq` (its
    /// author withdrew it, and the retraction reached `i`).
    fn withdraw(&mut self, i: usize, author: usize, seq: u64) {
        let author = node_id(author);
        let chain = self.nodes[i].store.get_mut(&author).unwrap();
        let stored = &mut chain[seq as usize - 1];
        stored.item = Item::Tombstone(WireTombstone {
            author,
            seq,
            id: stored.id,
            proof: b"the author's retraction".to_vec(),
            proof_sig: vec![],
        });
    }

    /// Runs node `i`'s driver: performs its actions until there are none.
    fn drive(&mut self, i: usize) {
        while let Some(action) = self.nodes[i].sync.poll_action() {
            match action {
                Action::Send { peer, frame } => {
                    let j = self.index[&peer];
                    self.send(i, j, frame);
                }
                Action::Push {
                    peer,
                    author,
                    seq,
                    urgent,
                } => {
                    let j = self.index[&peer];
                    let items = self.read(i, &author, seq, seq);
                    let frame = if urgent {
                        Frame::Envelopes { items }
                    } else {
                        Frame::Push { items }
                    };
                    self.send(i, j, frame);
                }
                Action::SendRange {
                    peer,
                    author,
                    from,
                    to,
                } => {
                    let j = self.index[&peer];
                    let items = self.read(i, &author, from, to);
                    let max_batch = self.nodes[i].sync.config().max_batch;
                    let mut batch = Vec::new();
                    let mut size = wire::ENVELOPES_HEADER_LEN;
                    for item in items {
                        let len = item.encoded_len();
                        if !batch.is_empty()
                            && (batch.len() == max_batch || size + len > wire::MAX_FRAME_BYTES)
                        {
                            let items = std::mem::take(&mut batch);
                            self.send(i, j, Frame::Envelopes { items });
                            size = wire::ENVELOPES_HEADER_LEN;
                        }
                        size += len;
                        batch.push(item);
                    }
                    if !batch.is_empty() {
                        self.send(i, j, Frame::Envelopes { items: batch });
                    }
                }
                Action::Ingest {
                    from,
                    author,
                    seq,
                    item,
                } => {
                    let now = self.now;
                    let node = &mut self.nodes[i];
                    match node.ingest(&author, seq, &item) {
                        Ok(id) if self.urgent.contains(&(author.clone(), seq)) => node
                            .sync
                            .handle_stored_urgent(&author, seq, id, Some(&from), now),
                        Ok(id) => node.sync.handle_stored(&author, seq, id, Some(&from), now),
                        Err(()) => {
                            node.rejected += 1;
                            node.sync.handle_rejected(&from, &author, seq, now);
                        }
                    }
                }
                Action::Disconnect { peer, .. } => {
                    let j = self.index[&peer];
                    if let Some(link) = self.links.get_mut(&(i.min(j), i.max(j))) {
                        link.up = false;
                    }
                    let id = self.nodes[i].id.clone();
                    self.nodes[j].sync.handle_disconnected(&id);
                }
            }
        }
    }

    /// What node `i`'s driver reads from its store to send: `author`'s
    /// `from..=to`, with spoiled signatures if the node is corrupt.
    fn read(&self, i: usize, author: &Fingerprint, from: u64, to: u64) -> Vec<Item> {
        let chain = &self.nodes[i].store[author];
        assert!(to as usize <= chain.len(), "a send beyond the store");
        let corrupt = self.nodes[i].corrupt;
        chain[from as usize - 1..to as usize]
            .iter()
            .map(|stored| match &stored.item {
                Item::Live { bytes, sig } if corrupt => Item::Live {
                    bytes: bytes.clone(),
                    sig: sig.iter().map(|b| b ^ 1).collect(),
                },
                item => item.clone(),
            })
            .collect()
    }

    fn send(&mut self, from: usize, to: usize, frame: Frame) {
        let bytes = frame.encode();
        let traffic = self.traffic.entry((from, to)).or_default();
        traffic.frames += 1;
        traffic.bytes += 4 + bytes.len() as u64;
        match &frame {
            Frame::Summary { tips } => {
                traffic.summaries += 1;
                traffic.summary_tips += tips.len() as u64;
            }
            Frame::Want { author, .. } => {
                traffic.wants += 1;
                *self.wants.entry((from, author.clone())).or_default() += 1;
            }
            Frame::Have { tips } => {
                traffic.haves += 1;
                traffic.have_tips += tips.len() as u64;
            }
            Frame::Envelopes { items } | Frame::Push { items } => {
                if matches!(frame, Frame::Push { .. }) {
                    traffic.pushed += items.len() as u64;
                }
                traffic.envelope_frames += 1;
                traffic.items += items.len() as u64;
                traffic.envelope_frame_bytes += 4 + bytes.len() as u64;
                for item in items {
                    if let Item::Live { bytes, sig } = item {
                        traffic.envelope_bytes += (bytes.len() + sig.len()) as u64;
                    }
                }
            }
            _ => {}
        }
        let key = (from.min(to), from.max(to));
        let direction = usize::from(from > to);
        let Some(link) = self.links.get_mut(&key) else {
            return;
        };
        if !link.up || self.rng.gen_bool(self.faults.drop) {
            return;
        }
        let copies = if self.rng.gen_bool(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let (lo, hi) = self.faults.latency_ms;
            let mut at = self.now + Duration::from_millis(self.rng.gen_range(lo..=hi));
            if !self.faults.reorder {
                at = at.max(link.tail[direction]);
                link.tail[direction] = at;
            }
            self.counter += 1;
            self.queue.insert(
                (at, self.counter),
                Msg {
                    from,
                    to,
                    epoch: link.epoch,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    /// Processes the next event (a frame landing or a timer), if any comes
    /// before `deadline`.
    fn step(&mut self, deadline: Instant) -> bool {
        let next_msg = self.queue.first_key_value().map(|((at, _), _)| *at);
        let next_timer = self
            .nodes
            .iter()
            .filter_map(|node| node.sync.poll_timeout())
            .min();
        let Some(next) = next_msg.into_iter().chain(next_timer).min() else {
            return false;
        };
        if next > deadline {
            return false;
        }
        self.now = self.now.max(next);
        if next_msg == Some(next) {
            let (_, msg) = self.queue.pop_first().unwrap();
            let key = (msg.from.min(msg.to), msg.from.max(msg.to));
            let live = self
                .links
                .get(&key)
                .is_some_and(|link| link.up && link.epoch == msg.epoch);
            if live {
                let frame = Frame::decode(&msg.bytes).expect("frames decode");
                let from = self.nodes[msg.from].id.clone();
                self.nodes[msg.to].sync.handle_frame(&from, frame, self.now);
                self.drive(msg.to);
            }
        } else {
            for i in 0..self.nodes.len() {
                if self.nodes[i]
                    .sync
                    .poll_timeout()
                    .is_some_and(|at| at <= self.now)
                {
                    self.nodes[i].sync.handle_timeout(self.now);
                    self.drive(i);
                }
            }
        }
        true
    }

    /// Runs until `done` holds, or `limit` of virtual time passes.
    /// Returns how long it took.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Net) -> bool) -> Option<Duration> {
        let began = self.now;
        let deadline = began + limit;
        loop {
            if done(self) {
                return Some(self.now - began);
            }
            if !self.step(deadline) {
                return done(self).then(|| self.now - began);
            }
        }
    }

    /// Runs for `span` of virtual time.
    fn run_for(&mut self, span: Duration) {
        let deadline = self.now + span;
        while self.step(deadline) {}
        self.now = self.now.max(deadline);
    }

    /// Every node in `group` holds exactly the chains of the authors in
    /// `group` it trusts, as their authors hold them, and nothing of the
    /// authors it does not trust.
    fn converged_within(&self, group: &[usize]) -> bool {
        group.iter().all(|&n| {
            let node = &self.nodes[n];
            group.iter().all(|&a| {
                let author = &self.nodes[a].id;
                let want = if node.trusted.contains(author) {
                    self.nodes[a].tip(author)
                } else {
                    None
                };
                node.tip(author) == want
            })
        })
    }

    /// Every node holds author `i`'s chain as `i` does (cheaper than
    /// [`Net::converged`] when only `i` filed).
    fn everywhere(&self, i: usize) -> bool {
        let author = &self.nodes[i].id;
        let want = self.nodes[i].tip(author);
        self.nodes.iter().all(|node| node.tip(author) == want)
    }

    fn converged(&self) -> bool {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.converged_within(&all)
    }

    fn total_traffic(&self) -> Traffic {
        let mut total = Traffic::default();
        for traffic in self.traffic.values() {
            total.add(traffic);
        }
        total
    }

    fn traffic_to(&self, node: usize) -> Traffic {
        let mut total = Traffic::default();
        for ((_, to), traffic) in &self.traffic {
            if *to == node {
                total.add(traffic);
            }
        }
        total
    }

    fn traffic_from(&self, node: usize) -> Traffic {
        let mut total = Traffic::default();
        for ((from, _), traffic) in &self.traffic {
            if *from == node {
                total.add(traffic);
            }
        }
        total
    }

    fn duplicates_received(&self) -> u64 {
        self.nodes
            .iter()
            .map(|node| node.sync.stats().duplicates)
            .sum()
    }

    /// Nothing stored twice, nothing refused: every node's store only ever
    /// got contiguous, valid successors.
    fn assert_clean_ingest(&self) {
        for node in &self.nodes {
            assert_eq!(node.stored_twice, 0, "{:?} stored twice", node.id);
            assert_eq!(node.rejected, 0, "{:?} rejected items", node.id);
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

// ------------------------------------------------------------- topologies

fn line(n: usize) -> Vec<(usize, usize)> {
    (1..n).map(|i| (i - 1, i)).collect()
}

fn ring(n: usize) -> Vec<(usize, usize)> {
    let mut edges = line(n);
    edges.push((n - 1, 0));
    edges
}

fn star(n: usize) -> Vec<(usize, usize)> {
    (1..n).map(|i| (0, i)).collect()
}

/// A random connected graph: a random spanning tree plus `extra` edges.
fn random_graph(n: usize, extra: usize, rng: &mut StdRng) -> Vec<(usize, usize)> {
    let mut edges: BTreeSet<(usize, usize)> = (1..n).map(|i| (rng.gen_range(0..i), i)).collect();
    let mut tries = 0;
    while edges.len() < n - 1 + extra && tries < 100 * n {
        tries += 1;
        let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
        if a != b {
            edges.insert((a.min(b), a.max(b)));
        }
    }
    edges.into_iter().collect()
}

const SECOND: Duration = Duration::from_secs(1);

/// Files `filings` envelopes at random nodes, `gap` apart, letting the mesh
/// run between them.
fn file_randomly(net: &mut Net, filings: usize, gap: Duration, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = net.nodes.len();
    for _ in 0..filings {
        net.file(rng.gen_range(0..n));
        net.run_for(gap);
    }
}

// ------------------------------------------------------------------ tests

#[test]
fn live_push_crosses_many_hops_without_duplicates() {
    let n = 8;
    let mut net = Net::new(n, 1, Config::default(), &[]);
    net.connect_all(&line(n));
    net.run_for(SECOND);
    for round in 1..=5u64 {
        net.file(0);
        let took = net
            .run_until(10 * SECOND, Net::converged)
            .expect("filing reaches the far end");
        // Pushed hop by hop, well before any anti-entropy round.
        assert!(took < SECOND, "round {round} took {took:?}");
        assert_eq!(net.nodes[n - 1].tip(&node_id(0)).unwrap().0, round);
    }
    let total = net.total_traffic();
    // A line is a tree: each hop carries each envelope exactly once.
    assert_eq!(total.items, 5 * (n as u64 - 1));
    assert_eq!(net.duplicates_received(), 0);
    net.assert_clean_ingest();
}

#[test]
fn ring_converges_with_at_most_the_meeting_duplicates() {
    let n = 16;
    let mut net = Net::new(n, 2, Config::default(), &[]);
    net.connect_all(&ring(n));
    net.run_for(SECOND);
    let filings = 20;
    file_randomly(&mut net, filings, 2 * SECOND, 20);
    assert!(net.run_until(60 * SECOND, Net::converged).is_some());
    // Around a ring the two directions meet once per filing: at most two
    // nodes get the envelope from both sides.
    let items = net.total_traffic().items;
    assert!(
        items <= filings as u64 * (n as u64 + 1),
        "{items} items for {filings} filings"
    );
    assert!(net.duplicates_received() <= 2 * filings as u64);
    net.assert_clean_ingest();
}

#[test]
fn star_converges_through_the_hub() {
    let n = 32;
    let mut net = Net::new(n, 3, Config::default(), &[]);
    net.connect_all(&star(n));
    net.run_for(SECOND);
    // Filings overlap: the next starts before the last has spread.
    file_randomly(&mut net, 60, Duration::from_millis(20), 30);
    assert!(net.run_until(60 * SECOND, Net::converged).is_some());
    assert_eq!(net.total_traffic().items, 60 * (n as u64 - 1));
    assert_eq!(net.duplicates_received(), 0);
    net.assert_clean_ingest();
}

#[test]
fn random_graphs_converge_and_duplicates_per_filing_are_reported() {
    for (n, extra, seed) in [(8, 4, 40), (20, 15, 41), (32, 32, 42)] {
        let mut rng = StdRng::seed_from_u64(seed);
        let edges = random_graph(n, extra, &mut rng);
        let mut net = Net::new(n, seed, Config::default(), &[]);
        net.connect_all(&edges);
        net.run_for(SECOND);
        let filings = 50;
        // Some filings overlap in flight (30 ms apart, 5–50 ms per hop).
        file_randomly(&mut net, filings, Duration::from_millis(30), seed);
        let took = net.run_until(60 * SECOND, Net::converged);
        assert!(took.is_some(), "{n} nodes did not converge");
        net.assert_clean_ingest();
        let duplicates = net.duplicates_received();
        let per_node_per_filing = duplicates as f64 / (n as f64 - 1.0) / filings as f64;
        let mean_degree = 2.0 * edges.len() as f64 / n as f64;
        println!(
            "random graph: {n} nodes, {} edges (mean degree {mean_degree:.2}), {filings} filings: \
             {duplicates} duplicate items received, {per_node_per_filing:.3} per node per filing; \
             {} items sent, {} stored",
            edges.len(),
            net.total_traffic().items,
            filings * (n - 1),
        );
        // A node hears a filing at most once per neighbour, minus the one
        // it came from.
        assert!(per_node_per_filing < mean_degree - 1.0);
    }
}

#[test]
fn partition_then_heal_converges() {
    let n = 16;
    let mut rng = StdRng::seed_from_u64(5);
    let edges = random_graph(n, 10, &mut rng);
    let mut net = Net::new(n, 5, Config::default(), &[]);
    // Each half is connected on its own (line inside), and the halves are
    // joined by the random edges crossing them.
    let left: Vec<usize> = (0..n / 2).collect();
    let right: Vec<usize> = (n / 2..n).collect();
    let mut all_edges = edges.clone();
    all_edges.extend(line(n / 2));
    all_edges.extend(line(n / 2).iter().map(|(a, b)| (a + n / 2, b + n / 2)));
    net.connect_all(&all_edges);
    file_randomly(&mut net, 10, SECOND, 50);
    assert!(net.run_until(60 * SECOND, Net::converged).is_some());

    let crossing: Vec<(usize, usize)> = all_edges
        .iter()
        .copied()
        .filter(|(a, b)| (*a < n / 2) != (*b < n / 2))
        .collect();
    assert!(!crossing.is_empty());
    for &(a, b) in &crossing {
        net.disconnect(a, b);
    }
    for _ in 0..15 {
        let i = net.rng.gen_range(0..n);
        net.file(i);
        net.run_for(Duration::from_millis(200));
    }
    net.run_for(120 * SECOND);
    assert!(net.converged_within(&left));
    assert!(net.converged_within(&right));
    assert!(!net.converged(), "the halves cannot have met");

    net.connect_all(&crossing);
    // Reconnecting exchanges summaries at once; no need to wait for a round.
    let took = net.run_until(60 * SECOND, Net::converged).expect("heals");
    assert!(took < 5 * SECOND, "took {took:?}");
    net.assert_clean_ingest();
}

#[test]
fn anti_entropy_repairs_lost_pushes() {
    let n = 6;
    let config = Config::default();
    let mut net = Net::new(n, 6, config.clone(), &[]);
    net.connect_all(&ring(n));
    net.run_for(SECOND);
    // Every frame is lost for a while, connections stay up: pushes vanish.
    net.faults.drop = 1.0;
    for i in 0..n {
        net.file(i);
        net.file(i);
    }
    net.run_for(SECOND);
    net.faults.drop = 0.0;
    assert!(!net.converged());
    let took = net
        .run_until(5 * config.anti_entropy, Net::converged)
        .expect("anti-entropy repairs");
    // The next round of summaries (at most one period away) finds the gaps.
    assert!(took <= config.anti_entropy + SECOND, "took {took:?}");
    net.assert_clean_ingest();
}

#[test]
fn lossy_duplicating_reordering_network_converges() {
    for seed in 0..6 {
        let n = 12;
        let mut rng = StdRng::seed_from_u64(100 + seed);
        let edges = random_graph(n, 8, &mut rng);
        let mut net = Net::new(n, seed, Config::default(), &[]);
        net.faults = Faults {
            drop: 0.1,
            duplicate: 0.1,
            reorder: true,
            latency_ms: (1, 200),
        };
        net.connect_all(&edges);
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..40 {
            let i = rng.gen_range(0..n);
            // Bursts: several envelopes of one author back to back.
            for _ in 0..rng.gen_range(1..4) {
                net.file(i);
            }
            net.run_for(Duration::from_millis(rng.gen_range(0..300)));
        }
        let took = net.run_until(30 * 60 * SECOND, Net::converged);
        assert!(took.is_some(), "seed {seed} did not converge");
        // Every node holds the same envelopes, each stored once.
        let reference: Vec<_> = (0..n).map(|a| net.nodes[0].tip(&node_id(a))).collect();
        for node in &net.nodes {
            let tips: Vec<_> = (0..n).map(|a| node.tip(&node_id(a))).collect();
            assert_eq!(tips, reference);
        }
        net.assert_clean_ingest();
    }
}

#[test]
fn offline_node_catches_up_in_proportion_to_what_it_missed() {
    // A - B - C, and N joins later through C and A.
    let (a, b, c, offline) = (0, 1, 2, 3);
    let mut net = Net::new(4, 7, Config::default(), &[]);
    net.connect_all(&[(a, b), (b, c)]);
    net.run_for(SECOND);
    let missing_a = 10_000;
    for _ in 0..missing_a {
        net.file(a);
    }
    for _ in 0..10 {
        net.file(b);
    }
    for _ in 0..5 {
        net.file(c);
    }
    // Some of A's were withdrawn: they travel as tombstones.
    assert!(net
        .run_until(60 * SECOND, |net| net.converged_within(&[a, b, c]))
        .is_some());
    for holder in [a, b, c] {
        for seq in [2, 500, 9_999] {
            net.withdraw(holder, a, seq);
        }
    }
    let missing = missing_a + 10 + 5;

    let before = net.traffic.clone();
    net.connect_all(&[(c, offline), (a, offline)]);
    let took = net
        .run_until(120 * SECOND, Net::converged)
        .expect("catches up");
    let delta = |from: usize, to: usize| {
        let mut t = net.traffic.get(&(from, to)).copied().unwrap_or_default();
        let old = before.get(&(from, to)).copied().unwrap_or_default();
        t.frames -= old.frames;
        t.summaries -= old.summaries;
        t.summary_tips -= old.summary_tips;
        t.wants -= old.wants;
        t.envelope_frames -= old.envelope_frames;
        t.items -= old.items;
        t.bytes -= old.bytes;
        t.envelope_frame_bytes -= old.envelope_frame_bytes;
        t.envelope_bytes -= old.envelope_bytes;
        t
    };
    let mut to_n = delta(a, offline);
    to_n.add(&delta(c, offline));
    let mut from_n = delta(offline, a);
    from_n.add(&delta(offline, c));
    println!(
        "catch-up of {missing} envelopes in {took:?} (virtual): {} items in {} Envelopes frames \
         to N; N sent {} Wants and {} Summaries; {} bytes on the wire for {} envelope bytes \
         (ratio {:.3})",
        to_n.items,
        to_n.envelope_frames,
        from_n.wants,
        from_n.summaries,
        to_n.envelope_frame_bytes,
        to_n.envelope_bytes,
        to_n.envelope_frame_bytes as f64 / to_n.envelope_bytes as f64,
    );
    // Items sent to N: what it lacked, plus at most a handful of races.
    assert!(to_n.items >= missing as u64);
    assert!(to_n.items <= missing as u64 + 16, "{} items", to_n.items);
    // Frames: a full batch per 256 items, a Want per 4096-span per author.
    let spans = (missing_a as u64).div_ceil(4096) + 2;
    assert!(from_n.wants <= spans + 2, "{} wants", from_n.wants);
    assert!(to_n.envelope_frames <= (missing as u64).div_ceil(256) + spans + 4);
    // Summaries are one tip per author, whatever the store's size.
    assert_eq!(to_n.summary_tips, 3 * to_n.summaries);
    assert!(from_n.summary_tips <= 3 * from_n.summaries);
    // The envelopes dominate the bytes on the wire.
    assert!(to_n.envelope_frame_bytes as f64 <= 1.2 * to_n.envelope_bytes as f64);
    // Tombstones arrived as such.
    let chain = &net.nodes[offline].store[&node_id(a)];
    assert!(matches!(chain[499].item, Item::Tombstone(_)));
    assert!(matches!(chain[500].item, Item::Live { .. }));
    net.assert_clean_ingest();

    // Reconnecting with nothing missing costs summaries only.
    net.disconnect(c, offline);
    net.disconnect(a, offline);
    let before = (net.traffic_to(offline), net.traffic_from(offline));
    net.connect_all(&[(c, offline), (a, offline)]);
    net.run_for(SECOND);
    let after = (net.traffic_to(offline), net.traffic_from(offline));
    for (before, after) in [(before.0, after.0), (before.1, after.1)] {
        assert_eq!(after.frames - before.frames, 2);
        assert_eq!(after.summaries - before.summaries, 2);
        assert_eq!(after.summary_tips - before.summary_tips, 6);
    }
}

#[test]
fn untrusted_authors_are_neither_requested_nor_stored() {
    // Node 3 trusts neither author (nor peer) 0. Ring 0-1-2-3-4-0, and a
    // chord 0-3 that node 3 refuses.
    let n = 5;
    let mut net = Net::new(n, 8, Config::default(), &[(3, 0)]);
    net.connect_all(&ring(n));
    net.connect(0, 3);
    assert!(!net.links[&(0, 3)].up);
    assert!(net.nodes[0].sync.peer(&node_id(3)).is_none());
    for _ in 0..20 {
        net.file(0);
    }
    for i in 1..n {
        net.file(i);
    }
    assert!(net.run_until(60 * SECOND, Net::converged).is_some());
    // Anti-entropy rounds come and go; still nothing of node 0 at node 3.
    net.run_for(120 * SECOND);
    assert!(net.converged());
    assert!(!net.nodes[3].store.contains_key(&node_id(0)));
    assert_eq!(net.wants.get(&(3, node_id(0))), None);
    // Its neighbours pushed node 0's envelopes, not knowing; it ignored them.
    assert!(net.nodes[3].sync.stats().ignored > 0);
    // It took the envelopes of nodes 1, 2 and 4, nothing else.
    assert_eq!(net.nodes[3].sync.stats().ingested, 3);
    net.assert_clean_ingest();
}

#[test]
fn set_trusted_removing_a_peer_disconnects_it() {
    let mut net = Net::new(3, 9, Config::default(), &[]);
    net.connect_all(&line(3));
    net.file(2);
    assert!(net.run_until(10 * SECOND, Net::converged).is_some());

    let keep: Vec<Fingerprint> = [0, 1].map(node_id).to_vec();
    net.nodes[1].trusted = keep.iter().cloned().collect();
    net.nodes[1].sync.set_trusted(keep);
    net.drive(1);
    assert!(!net.links[&(1, 2)].up);
    assert!(net.nodes[1].sync.peer(&node_id(2)).is_none());
    assert!(net.nodes[2].sync.peer(&node_id(1)).is_none());
    assert!(net.nodes[1].sync.peer(&node_id(0)).is_some());

    net.file(2);
    net.file(0);
    net.run_for(120 * SECOND);
    assert_eq!(net.nodes[0].tip(&node_id(2)).unwrap().0, 1);
    assert_eq!(net.nodes[2].tip(&node_id(0)), None);
    assert_eq!(net.nodes[1].tip(&node_id(0)).unwrap().0, 1);
    println!("virtual time: {:?}", net.elapsed());
}

#[test]
fn peer_serving_bad_signatures_is_routed_around() {
    // Ring of 6; node 3's driver spoils every signature it relays. Nodes 2
    // and 4 file: each one's envelopes reach the other through node 3
    // first (two hops against four), are refused, and come the long way.
    let n = 6;
    let mut net = Net::new(n, 10, Config::default(), &[]);
    net.nodes[3].corrupt = true;
    net.connect_all(&ring(n));
    net.run_for(SECOND);
    for _ in 0..3 {
        net.file(2);
        net.file(4);
        net.run_for(Duration::from_millis(100));
    }
    let took = net.run_until(10 * 60 * SECOND, Net::converged);
    assert!(took.is_some(), "did not converge");
    assert!(net.nodes[2].rejected > 0 && net.nodes[4].rejected > 0);
    for node in &net.nodes {
        assert_eq!(node.stored_twice, 0);
    }
    println!(
        "bad-signature peer routed around in {:?}; rejections at its neighbours: {} and {}",
        took.unwrap(),
        net.nodes[2].rejected,
        net.nodes[4].rejected
    );
}

/// Copies of each envelope a node received, on average: everything that
/// arrived in Push and Envelopes frames over what each node needed.
fn copies_per_node(net: &Net, filings: usize) -> f64 {
    let received: u64 = net
        .nodes
        .iter()
        .map(|node| node.sync.stats().received)
        .sum();
    received as f64 / ((net.nodes.len() - 1) * filings) as f64
}

/// 60 nodes of mean degree about 4, filings at random nodes: flooding
/// (every link eager) against lazy push, on the same graph and seed.
fn continental_run(config: Config, seed: u64) -> (Net, f64, Duration) {
    let n = 60;
    let mut rng = StdRng::seed_from_u64(seed);
    let edges = random_graph(n, 60, &mut rng);
    let mut net = Net::new(n, seed, config, &[]);
    net.faults.latency_ms = (5, 150);
    net.connect_all(&edges);
    net.run_for(SECOND);
    let filings = 300;
    let mut slowest = Duration::ZERO;
    for k in 0..filings {
        let i = rng.gen_range(0..n);
        net.file(i);
        // Each filing spreads before the next: its time to reach all.
        let took = net
            .run_until(30 * SECOND, |net| net.everywhere(i))
            .unwrap_or_else(|| panic!("filing {k} did not reach every node"));
        slowest = slowest.max(took);
    }
    assert!(net.converged());
    let copies = copies_per_node(&net, filings);
    (net, copies, slowest)
}

#[test]
fn lazy_push_settles_to_about_one_copy_per_node() {
    let flood = Config {
        flood: true,
        ..Config::default()
    };
    let (flooded, flood_copies, flood_slowest) = continental_run(flood, 60);
    let (lazy, lazy_copies, lazy_slowest) = continental_run(Config::default(), 60);
    let stats = |net: &Net| {
        let mut total = cer_proto::sync::Stats::default();
        for node in &net.nodes {
            let s = node.sync.stats();
            total.duplicate_pushes += s.duplicate_pushes;
            total.prunes_sent += s.prunes_sent;
            total.grafts_sent += s.grafts_sent;
            total.haves_sent += s.haves_sent;
        }
        total
    };
    let (f, l) = (stats(&flooded), stats(&lazy));
    println!(
        "60 nodes, 300 filings: flooding {flood_copies:.2} copies per node per filing \
         (slowest filing {flood_slowest:?} to all), lazy push {lazy_copies:.2} \
         (slowest {lazy_slowest:?}); lazy: {} prunes, {} grafts, {} Have frames, \
         {} duplicate pushes (flooding: {})",
        l.prunes_sent, l.grafts_sent, l.haves_sent, l.duplicate_pushes, f.duplicate_pushes
    );
    assert!(flood_copies > 2.0, "flooding gave {flood_copies:.2} copies");
    assert!(lazy_copies <= 1.5, "lazy push gave {lazy_copies:.2} copies");
    assert!(l.prunes_sent > 0);
    // The tree is no slower than a graft round beyond flooding.
    assert!(
        lazy_slowest <= flood_slowest + 2 * Config::default().graft_timeout,
        "lazy push's slowest filing took {lazy_slowest:?}"
    );
    lazy.assert_clean_ingest();
    flooded.assert_clean_ingest();
}

#[test]
fn a_broken_tree_is_repaired_by_grafts_before_anti_entropy() {
    let n = 30;
    let seed = 61;
    let mut rng = StdRng::seed_from_u64(seed);
    let edges = random_graph(n, 30, &mut rng);
    let mut net = Net::new(n, seed, Config::default(), &[]);
    net.faults.latency_ms = (5, 100);
    net.connect_all(&edges);
    net.run_for(SECOND);
    for _ in 0..60 {
        let i = rng.gen_range(0..n);
        net.file(i);
        net.run_until(30 * SECOND, |net| net.everywhere(i))
            .expect("spreads");
    }
    // Cut eager links while the graph stays connected: the tree breaks.
    let eager = |net: &Net, a: usize, b: usize| {
        net.nodes[a]
            .sync
            .peer(&net.nodes[b].id)
            .is_some_and(|view| view.eager)
    };
    let mut up: Vec<(usize, usize)> = edges.clone();
    let mut cut = 0;
    for &(a, b) in &edges {
        if cut == 4 || !eager(&net, a, b) {
            continue;
        }
        let rest: Vec<(usize, usize)> = up.iter().copied().filter(|e| *e != (a, b)).collect();
        if connected(n, &rest) {
            net.disconnect(a, b);
            up = rest;
            cut += 1;
        }
    }
    assert_eq!(cut, 4, "found eager links to cut");
    let grafts_before: u64 = net.nodes.iter().map(|n| n.sync.stats().grafts_sent).sum();
    let anti_entropy = Config::default().anti_entropy;
    for k in 0..30 {
        let i = rng.gen_range(0..n);
        net.file(i);
        let took = net
            .run_until(anti_entropy, |net| net.everywhere(i))
            .unwrap_or_else(|| panic!("filing {k} did not spread before anti-entropy"));
        assert!(
            took < Config::default().graft_timeout * 4,
            "filing {k} took {took:?}"
        );
    }
    let grafts: u64 = net.nodes.iter().map(|n| n.sync.stats().grafts_sent).sum();
    assert!(grafts > grafts_before, "the tree was repaired by grafts");
    net.assert_clean_ingest();
}

fn connected(n: usize, edges: &[(usize, usize)]) -> bool {
    let mut seen = BTreeSet::from([0]);
    let mut stack = vec![0];
    while let Some(a) = stack.pop() {
        for &(x, y) in edges {
            let other = if x == a {
                y
            } else if y == a {
                x
            } else {
                continue;
            };
            if seen.insert(other) {
                stack.push(other);
            }
        }
    }
    seen.len() == n
}

#[test]
fn lazy_push_over_lossy_links_converges_near_one_copy() {
    let n = 40;
    let seed = 62;
    let mut rng = StdRng::seed_from_u64(seed);
    let edges = random_graph(n, 40, &mut rng);
    let mut net = Net::new(n, seed, Config::default(), &[]);
    net.faults = Faults {
        drop: 0.03,
        duplicate: 0.0,
        reorder: true,
        latency_ms: (5, 150),
    };
    net.connect_all(&edges);
    net.run_for(SECOND);
    let filings = 150;
    let mut slowest = Duration::ZERO;
    for k in 0..filings {
        let i = rng.gen_range(0..n);
        net.file(i);
        let took = net
            .run_until(120 * SECOND, |net| net.everywhere(i))
            .unwrap_or_else(|| panic!("filing {k} did not reach every node"));
        slowest = slowest.max(took);
    }
    assert!(net.converged());
    let copies = copies_per_node(&net, filings);
    let grafts: u64 = net.nodes.iter().map(|n| n.sync.stats().grafts_sent).sum();
    println!(
        "40 nodes, 3 % of frames lost, reordered: {copies:.2} copies per node per filing, \
         {grafts} grafts, slowest filing {slowest:?} to all"
    );
    assert!(copies <= 1.5, "{copies:.2} copies per node");
    net.assert_clean_ingest();
}

#[test]
fn urgent_envelopes_are_flooded_without_disturbing_the_tree() {
    let (mut net, _, _) = continental_run(Config::default(), 63);
    let n = net.nodes.len();
    let stats = |net: &Net| -> (u64, u64) {
        let received = net.nodes.iter().map(|n| n.sync.stats().received).sum();
        let prunes = net.nodes.iter().map(|n| n.sync.stats().prunes_sent).sum();
        (received, prunes)
    };
    let mut rng = StdRng::seed_from_u64(63);
    let (mut tree_slowest, mut flood_slowest) = (Duration::ZERO, Duration::ZERO);
    let before = stats(&net);
    for _ in 0..40 {
        let i = rng.gen_range(0..n);
        net.file_urgent(i);
        let took = net
            .run_until(30 * SECOND, |net| net.everywhere(i))
            .expect("an urgent filing spreads");
        flood_slowest = flood_slowest.max(took);
    }
    let after = stats(&net);
    for _ in 0..40 {
        let i = rng.gen_range(0..n);
        net.file(i);
        let took = net
            .run_until(30 * SECOND, |net| net.everywhere(i))
            .expect("a filing spreads");
        tree_slowest = tree_slowest.max(took);
    }
    let copies = (after.0 - before.0) as f64 / (40 * (n - 1)) as f64;
    println!(
        "urgent filings: {copies:.2} copies per node, slowest {flood_slowest:?} to all; \
         along the tree: slowest {tree_slowest:?}; prunes during the flood: {}",
        after.1 - before.1
    );
    // Flooded: every link carries it, and no link is pruned for it.
    assert!(copies > 2.0, "{copies:.2} copies per node");
    assert_eq!(after.1, before.1, "the flood pruned links");
    assert!(flood_slowest < tree_slowest, "flooding is the faster path");
    net.assert_clean_ingest();
}
