//! `cerd demo`: three CERT nodes on this machine, federating for real.
//!
//! The nodes are full daemons (own keys, stores, API sockets and QUIC
//! endpoints on 127.0.0.1) run in this process, in a line
//! CN-CERT — KE-CIRT — NG-CERT, so everything between CN and NG goes
//! through KE. The narrative shows what a newcomer should see: a report
//! crossing a relay with its author's signature intact, a TLP:RED report
//! the relay can only hold as ciphertext, catch-up after an outage, a
//! receipt and a retraction.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use cer_proto::api::{AcknowledgeIncident, FileIncident, RetractIncident};
use cer_proto::envelope::ReceiptState;
use cer_proto::incident::Event;
use cer_proto::model::{Classification, Indicator, Severity, Tlp};
use uuid::Uuid;

use crate::daemon::Daemon;
use crate::local;
use crate::node::Node;

const NAMES: [&str; 3] = ["CN-CERT", "KE-CIRT", "NG-CERT"];
const WAIT: Duration = Duration::from_secs(30);

/// Runs the demo in `dir` (a fresh temporary folder when None).
pub async fn run(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temp;
    let root = match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            if std::fs::read_dir(&dir)?.next().is_some() {
                bail!(
                    "{} is not empty; give an empty or new folder",
                    dir.display()
                );
            }
            dir
        }
        None => {
            temp = tempfile_dir()?;
            temp.clone()
        }
    };
    let started = Instant::now();
    say("cerd demo: three national CERTs federating on this machine");
    say(&format!("  working folder: {}", root.display()));
    say("");

    let nodes = local::prepare(&root, &NAMES)?;
    let [cn_node, ke_node, ng_node] = [&nodes[0], &nodes[1], &nodes[2]];
    step(1, "Each CERT has an OpenPGP key and trusts the other two (their certificates are in its certs/).");
    say("   The mesh is a line: CN-CERT — KE-CIRT — NG-CERT. CN and NG are not linked; KE relays.");
    let cn_config = cn_node.config(&[ke_node.port], "5s")?;
    let ke_config = ke_node.config(&[], "5s")?;
    let ng_config = ng_node.config(&[ke_node.port], "5s")?;
    let mut ke = Daemon::start(ke_config.clone()).await?;
    let cn = Daemon::start(cn_config).await?;
    let ng = Daemon::start(ng_config).await?;
    wait_until("the mesh to form", || connected(ke.node()) == 2).await?;
    for d in [&cn, &ke, &ng] {
        let s = d.node().status();
        say(&format!(
            "   {:<8} {}  QUIC {}  API {}",
            s.name,
            s.fingerprint,
            s.listen.unwrap_or_default(),
            s.api_socket
        ));
    }
    say("");

    step(
        2,
        "NG-CERT files a TLP:GREEN incident. It travels NG → KE → CN.",
    );
    let t0 = Instant::now();
    let filed = ng
        .node()
        .file(incident(
            "Ransomware C2 servers targeting ports and customs",
            Tlp::Green,
            &[],
            &["ipv4:203.0.113.50", "domain:update-check.example"],
        ))
        .await?;
    wait_until("CN to receive it", || holds(cn.node(), filed.incident)).await?;
    let arrived = t0.elapsed();
    let detail = cn.node().detail(filed.incident)?;
    let author = &detail.envelopes[0].header.author;
    say(&format!(
        "   CN-CERT has it after {} ms. Author: {} ({author}); signature verified against NG-CERT's certificate, although it came from KE.",
        arrived.as_millis(),
        detail.names.get(author).map_or("?", String::as_str)
    ));
    say(&format!(
        "   Same bytes everywhere: envelope {} (its SHA-256) at NG, KE and CN.",
        detail.envelopes[0].id
    ));
    say("");

    step(3, "NG-CERT files a TLP:RED incident for CN-CERT only.");
    let secret_title = "Mail server of the transport ministry compromised";
    let red = ng
        .node()
        .file(incident(
            secret_title,
            Tlp::Red,
            &["CN-CERT"],
            &["domain:exfil-drop.example"],
        ))
        .await?;
    wait_until("CN to receive the RED report", || {
        holds(cn.node(), red.incident)
    })
    .await?;
    wait_until("KE to relay the RED report", || {
        holds(ke.node(), red.incident)
    })
    .await?;
    let at_cn = cn.node().detail(red.incident)?;
    let at_ke = ke.node().detail(red.incident)?;
    say(&format!(
        "   CN-CERT reads it: \"{}\"",
        at_cn
            .incident
            .content
            .as_ref()
            .map_or("?", |c| c.title.as_str())
    ));
    let names: Vec<String> = at_ke
        .incident
        .recipients
        .iter()
        .map(|f| ke.node().name_of(f).unwrap_or_else(|| f.to_string()))
        .collect();
    say(&format!(
        "   KE-CIRT relayed it but sees: {} — encrypted for {}.",
        at_ke.incident.display_title(),
        names.join(", ")
    ));
    let plaintext_at_ke = contains(&root.join(NAMES[1]), secret_title.as_bytes());
    say(&format!(
        "   Searching KE-CIRT's files for the title: {}.",
        if plaintext_at_ke {
            "FOUND (this is a bug)"
        } else {
            "not found, only ciphertext"
        }
    ));
    say("");

    step(4, "KE-CIRT goes offline (power cut). NG-CERT keeps filing.");
    ke.shutdown().await?;
    let during = 500;
    let mut last = Uuid::nil();
    for k in 0..during {
        last = ng
            .node()
            .file(incident(
                &format!("Phishing domain batch {k}"),
                Tlp::Green,
                &[],
                &[],
            ))
            .await?
            .incident;
    }
    say(&format!(
        "   NG-CERT filed {during} incidents while KE was down; CN cannot get them."
    ));
    let t0 = Instant::now();
    ke = Daemon::start(ke_config).await?;
    wait_until("CN to catch up through KE", || holds(cn.node(), last)).await?;
    say(&format!(
        "   KE-CIRT restarted; CN-CERT had all {during} after {} ms. Only what was missing crossed the links.",
        t0.elapsed().as_millis()
    ));
    say("");

    step(
        5,
        "CN-CERT's analyst marks the first incident as actioned: a signed receipt goes back to NG.",
    );
    cn.node()
        .acknowledge(
            filed.incident,
            AcknowledgeIncident {
                state: ReceiptState::Actioned,
                comment: Some("C2 addresses blocked at the national gateway".into()),
            },
        )
        .await?;
    wait_until("NG to see the receipt", || {
        has_receipt(ng.node(), filed.incident)
    })
    .await?;
    let at_ng = ng.node().detail(filed.incident)?;
    for entry in &at_ng.incident.timeline {
        if let Event::Receipt { state, comment, .. } = &entry.event {
            say(&format!(
                "   NG-CERT sees a receipt signed by {}: {state}{}",
                ng.node()
                    .name_of(&entry.author)
                    .unwrap_or_else(|| entry.author.to_string()),
                comment
                    .as_deref()
                    .map(|c| format!(" — {c}"))
                    .unwrap_or_default()
            ));
        }
    }
    say("");

    step(6, "NG-CERT retracts the first incident (false positive).");
    ng.node()
        .retract(
            filed.incident,
            RetractIncident {
                reason: Some("false positive".into()),
                envelope: None,
            },
        )
        .await?;
    for d in [&cn, &ke] {
        wait_until("the retraction to arrive", || {
            retracted(d.node(), filed.incident)
        })
        .await?;
    }
    say("   Gone from every node's listings; each keeps a tombstone and the signed retraction.");
    say("");

    for d in [cn, ke, ng] {
        d.shutdown().await?;
    }
    say(&format!(
        "Done in {:.1} s.",
        started.elapsed().as_secs_f64()
    ));
    if temp_is(&root) {
        std::fs::remove_dir_all(&root).ok();
    } else {
        say(&format!(
            "The three nodes' folders are kept in {}: run `cerd --config {}/KE-CIRT/cerd.toml` to look around.",
            root.display(),
            root.display()
        ));
    }
    Ok(())
}

/// Narration. A reader that went away (`cerd demo | head`) does not stop
/// the demo half-way: it finishes quietly and removes its folders.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn step(n: u32, text: &str) {
    let _ = writeln!(std::io::stdout(), "{n}. {text}");
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    // Short, so Unix socket paths stay under the ~108-byte limit.
    let dir = std::env::temp_dir().join(format!("cerd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn temp_is(dir: &Path) -> bool {
    dir.starts_with(std::env::temp_dir())
        && dir
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("cerd-demo-"))
}

fn incident(title: &str, tlp: Tlp, to: &[&str], iocs: &[&str]) -> FileIncident {
    let class = Classification::parse("malicious-code/c2-server").expect("known class");
    FileIncident {
        indicators: iocs
            .iter()
            .map(|s| Indicator::parse_spec(s).expect("valid indicator"))
            .collect(),
        to: to.iter().map(|s| s.to_string()).collect(),
        request_id: None,
        ..FileIncident::new(title, Severity::High, tlp, class)
    }
}

fn connected(node: &Arc<Node>) -> usize {
    node.peers().peers.iter().filter(|p| p.connected).count()
}

fn holds(node: &Arc<Node>, id: Uuid) -> bool {
    node.store().incident(id).ok().flatten().is_some()
}

fn retracted(node: &Arc<Node>, id: Uuid) -> bool {
    node.store()
        .incident(id)
        .ok()
        .flatten()
        .is_some_and(|s| s.retracted.is_some())
}

fn has_receipt(node: &Arc<Node>, id: Uuid) -> bool {
    node.store().incident(id).ok().flatten().is_some_and(|s| {
        s.timeline
            .iter()
            .any(|e| matches!(e.event, Event::Receipt { .. }))
    })
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() > deadline {
            bail!("timed out after {}s waiting for {what}", WAIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

fn contains(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        }
    })
}
