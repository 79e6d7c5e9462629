//! `cerd key rotate`: the node moves to a new signing key and keeps its
//! identity. Run with the node stopped (the store is opened here, and
//! sled lets one process hold it): the node's chain gets a key-transition
//! envelope signed by the old key and the new, this node adopts its own
//! new key like any peer would (`certs/adopted/`), and the new key
//! becomes the key file, the old ones kept beside it to decrypt. Peers
//! adopt the new key when the transition reaches them, relayed like any
//! envelope.
//!
//! Offline rather than through the running node's API, because the key
//! a running node signs with is shared by its mesh, its publisher and its
//! playbooks: swapping it under them would need every one of them to
//! agree on the moment of the switch. A stop and a start make that moment
//! the restart.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use cer_proto::envelope::{Body, DraftBody, Envelope, KeyTransitionBody};
use cer_proto::model::Tlp;
use cer_proto::Fingerprint;

use crate::config::Config;
use crate::daemon::STORE_DIR;
use crate::key;
use crate::sign::Identity;
use crate::store::{Options, Publish, Store, StoredEnvelope};
use crate::trust::Trust;
use crate::verify;

/// The transition's bytes and signature, as the store's writer signed them.
type Signed = (Vec<u8>, Vec<u8>);

/// What a rotation did.
pub struct Rotated {
    pub name: String,
    pub identity: Fingerprint,
    pub old: Fingerprint,
    pub new: Fingerprint,
    pub seq: u64,
}

/// Fault injection for tests: the transition is signed by the new key
/// only, as a forger holding just a new key would sign it, and the node
/// keeps its old key, so it still authenticates and relays the forgery.
pub const FORGE_TRANSITION: &str = "CERD_FAULT_FORGE_TRANSITION";

/// Rotates the node's key, or finishes a rotation that was interrupted
/// after its transition was stored (a new one is started if it was not).
pub fn rotate(config: &Config) -> anyhow::Result<Rotated> {
    let key_path = key::key_path(config);
    let old = key::load(config)?;
    let given = key::given(config)?;
    let passphrase = given.as_ref().map(|g| &g.passphrase);
    let pending = key::pending_path(config);
    let interrupted = if pending.exists() {
        let next = Identity::load_with(&pending, passphrase)
            .with_context(|| format!("reading {}", pending.display()))?;
        Some(old.succeeded_by(next))
    } else {
        None
    };

    let store_path = config.data_dir.join(STORE_DIR);
    let options = Options {
        cache_bytes: config.store_cache_mib * 1024 * 1024,
    };
    let store = Store::open(&store_path, options).with_context(|| {
        format!(
            "opening the store {} (cerd key rotate runs with the node stopped)",
            store_path.display()
        )
    })?;
    let stored = match &interrupted {
        Some(next) => stored_transition(&store, &old, next)?,
        None => None,
    };
    let (new, (bytes, sig), seq) = match (interrupted, stored) {
        (Some(next), Some((signed, seq))) => (next, signed, seq),
        _ => {
            let new = old.successor().context("generating the new key")?;
            // The new key is on disk before the transition names it, so
            // an interruption never leaves a transition without its key.
            new.current_only()
                .save_with(&pending, passphrase)
                .with_context(|| format!("writing {}", pending.display()))?;
            let (signed, seq) = store_transition(&store, &old, &new)?;
            (new, signed, seq)
        }
    };
    store.close().context("closing the store")?;

    if std::env::var_os(FORGE_TRANSITION).is_some() {
        let _ = std::fs::remove_file(&pending);
        tracing::warn!(
            "{FORGE_TRANSITION} is set: a forged key transition was stored and the key kept"
        );
        return Ok(rotated(&old, &new, seq));
    }
    // This node trusts its own new key as its peers will.
    let envelope = Envelope::parse(&bytes).context("reading the key transition back")?;
    let transition =
        verify::transition_of(&envelope, &sig).context("reading the key transition back")?;
    let trust = Trust::load(&config.certs_dir, old.public_cert());
    trust
        .adopt(&bytes, &sig, &transition)
        .context("adopting the new key in certs/adopted")?;
    new.save_with(&key_path, passphrase)
        .with_context(|| format!("writing {}", key_path.display()))?;
    std::fs::remove_file(&pending).with_context(|| format!("removing {}", pending.display()))?;
    tracing::info!(target: crate::audit::AUDIT, event = "key_rotated", identity = %old.fingerprint(), old = %old.key_fingerprint(), new = %new.key_fingerprint(), seq, "node moved to a new key");
    Ok(rotated(&old, &new, seq))
}

fn rotated(old: &Identity, new: &Identity, seq: u64) -> Rotated {
    Rotated {
        name: old.name().to_owned(),
        identity: old.fingerprint().clone(),
        old: old.key_fingerprint().clone(),
        new: new.key_fingerprint().clone(),
        seq,
    }
}

/// The transition to `next` at the end of this node's chain, if an
/// interrupted rotation stored it.
fn stored_transition(
    store: &Store,
    old: &Identity,
    next: &Identity,
) -> anyhow::Result<Option<(Signed, u64)>> {
    let Some(tip) = store.chain_tip(old.fingerprint())? else {
        return Ok(None);
    };
    let Some(StoredEnvelope::Live { bytes, sig }) = store.envelope(&tip.id)? else {
        return Ok(None);
    };
    let names_next = Envelope::parse(&bytes)
        .ok()
        .and_then(|e| match e.plain_body() {
            Some(Ok(Body::KeyTransition(body))) => Some(body.new == *next.key_fingerprint()),
            _ => None,
        });
    Ok((names_next == Some(true)).then_some(((bytes, sig), tip.seq)))
}

/// Stores the key transition from `old` to `new` at the end of the
/// node's chain: its bytes and signature, and its seq.
fn store_transition(
    store: &Store,
    old: &Identity,
    new: &Identity,
) -> anyhow::Result<(Signed, u64)> {
    let cert = String::from_utf8(new.current_cert().armored())
        .context("the new certificate is not ASCII")?;
    let body = Body::KeyTransition(KeyTransitionBody {
        old: old.key_fingerprint().clone(),
        new: new.key_fingerprint().clone(),
        cert,
    });
    let signed: Arc<Mutex<Option<Signed>>> = Arc::default();
    let sign = {
        let (old, new, signed) = (
            Arc::new(old.current_only()),
            Arc::new(new.current_only()),
            signed.clone(),
        );
        Box::new(move |bytes: &[u8]| {
            let sig = if std::env::var_os(FORGE_TRANSITION).is_some() {
                new.sign_detached(bytes)
            } else {
                old.sign_transition(&new, bytes)
            };
            *signed.lock().unwrap_or_else(|e| e.into_inner()) = Some((bytes.to_vec(), sig.clone()));
            sig
        })
    };
    let publish = Publish {
        author: old.fingerprint().clone(),
        subject: uuid::Uuid::nil(),
        created: crate::audit::now(),
        tlp: Tlp::Clear,
        recipients: Vec::new(),
        body: DraftBody::Plain(body),
        readable: None,
        withdraws: Vec::new(),
        request: None,
        sign,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let published = runtime
        .block_on(store.publish(publish))
        .context("storing the key transition")?;
    let signed = signed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .context("the key transition was not signed")?;
    Ok((signed, published.filed.seq))
}
