//! The node's key: protected by a passphrase at rest, and revoked.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::harness::{eventually, run, TestNode, CERD};

const SOON: Duration = Duration::from_secs(30);

/// `cerd init --passphrase-file`; returns the passphrase file.
fn init_with_passphrase(node: &TestNode, passphrase: &str) -> PathBuf {
    let file = node.dir.path().join("passphrase");
    std::fs::write(&file, format!("{passphrase}\n")).unwrap();
    let (ok, text) = run(Command::new(CERD)
        .arg("--config")
        .arg(node.config_path())
        .args(["init", "--name", &node.name, "--passphrase-file"])
        .arg(&file));
    assert!(ok, "cerd init: {text}");
    assert!(text.contains("protected by the passphrase"), "{text}");
    file
}

#[test]
fn a_protected_key_is_refused_without_its_passphrase_and_signs_with_it() {
    let mut node = TestNode::new("KE-CIRT");
    let file = init_with_passphrase(&node, "correct horse battery");
    let key = std::fs::read(node.data_dir().join("identity.key")).unwrap();
    assert!(
        !key.windows(b"correct horse".len())
            .any(|w| w == b"correct horse"),
        "the passphrase is not in the key file"
    );

    let (code, text) = node.cerd(&["run"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("is protected by a passphrase and none was given"),
        "{text}"
    );
    for how in [
        "passphrase_file",
        "CERD_PASSPHRASE",
        "LoadCredential=cerd-passphrase",
    ] {
        assert!(text.contains(how), "{how} missing: {text}");
    }
    assert!(!node.socket().exists(), "nothing was started");

    let (code, text) = node.cerd_env(&["run"], &[("CERD_PASSPHRASE", "wrong horse")]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(
            "the passphrase from the environment variable CERD_PASSPHRASE does not unlock"
        ),
        "{text}"
    );

    // `cerd check` shows the key without needing the passphrase.
    let (code, text) = node.cerd(&["check"]);
    assert!(text.contains("protected by a passphrase"), "{code}: {text}");

    node.spawn_with(&[("CERD_PASSPHRASE", "correct horse battery")]);
    let fingerprint = node.fingerprint();
    let id = node.file_test("signed with the unlocked key");
    let exported = node.cerctl(&["export", "--format", "envelopes", "--incident", &id]);
    assert!(exported.ok().contains(&fingerprint), "{exported:?}");
    node.stop();

    // A systemd credential, then passphrase_file in cerd.toml.
    let credentials = node.dir.path().join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::copy(&file, credentials.join("cerd-passphrase")).unwrap();
    node.spawn_with(&[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())]);
    node.stop();
    let mut config = std::fs::read_to_string(node.config_path()).unwrap();
    config = format!("passphrase_file = \"{}\"\n{config}", file.display());
    std::fs::write(node.config_path(), config).unwrap();
    node.spawn();
    assert_eq!(node.status()["fingerprint"], fingerprint.as_str());
}

/// KE-CIRT — CN-CERT — NG-CERT, each trusting the other two; CN in the
/// middle, so KE's envelopes reach NG only through CN.
fn line() -> (TestNode, TestNode, TestNode) {
    let mut ke = TestNode::new("KE-CIRT");
    let mut cn = TestNode::new("CN-CERT");
    let mut ng = TestNode::new("NG-CERT");
    for node in [&ke, &cn, &ng] {
        node.init();
    }
    for (a, b) in [(&ke, &cn), (&ke, &ng), (&cn, &ng)] {
        a.trust(b);
        b.trust(a);
    }
    cn.spawn();
    cn.pin_listen();
    let addr = cn.listen_addr();
    ke.add_peer(&addr);
    ng.add_peer(&addr);
    ke.spawn();
    ng.spawn();
    (ke, cn, ng)
}

fn connected(node: &TestNode, to: &TestNode) -> bool {
    let peers = node.json(&["peers"]);
    peers["peers"].as_array().unwrap().iter().any(|p| {
        p["fingerprint"].as_str() == Some(to.fingerprint().as_str()) && p["connected"] == true
    })
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn has_incident(node: &TestNode, id: &str) -> bool {
    node.cerctl(&["--json", "incident", "show", id]).code == 0
}

#[test]
fn a_revocation_refuses_what_the_key_signs_after_it_and_cuts_its_node_off() {
    let (ke, cn, ng) = line();
    let revocation = ke.data_dir().join("KE-CIRT-revocation.asc");
    let text = std::fs::read_to_string(&revocation).unwrap();
    assert!(
        text.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{text}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&revocation).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let before = ke.file_test("filed before the revocation");
    eventually(SOON, "NG to hold KE's first incident", || {
        has_incident(&ng, &before).then_some(())
    });

    // NG learns of the revocation; CN does not yet, and relays what KE
    // signs next.
    std::fs::copy(&revocation, ng.certs_dir().join("KE-CIRT-revocation.asc")).unwrap();
    eventually(SOON, "NG to list KE's certificate as revoked", || {
        let certs = ng.json(&["certs", "list"]);
        let ke_cert = certs["certs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["fingerprint"].as_str() == Some(ke.fingerprint().as_str()))
            .cloned()?;
        ke_cert["revoked"].is_string().then_some(())
    });
    let listing = ng.cerctl(&["certs", "list"]);
    assert!(listing.ok().contains("revoked 20"), "{listing:?}");

    let after = ke.file_test("filed after the revocation");
    eventually(SOON, "CN to hold KE's second incident", || {
        has_incident(&cn, &after).then_some(())
    });
    eventually(
        SOON,
        "NG to refuse KE's second incident, relayed by CN",
        || {
            let peers = ng.json(&["peers"]);
            let from_cn = peers["peers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["fingerprint"].as_str() == Some(cn.fingerprint().as_str()))
                .cloned()?;
            from_cn["rejections"]["revoked"]
                .as_u64()
                .filter(|n| *n >= 1)
        },
    );
    assert!(!has_incident(&ng, &after));
    assert!(has_incident(&ng, &before), "what KE signed before stays");
    // The relay is not blamed for what it could not know.
    assert!(connected(&ng, &cn));

    // CN learns of it too: KE is disconnected and cannot come back.
    let added = cn.cerctl(&["certs", "add", revocation.to_str().unwrap()]);
    assert!(added.ok().contains("KE-CIRT"), "{added:?}");
    eventually(SOON, "CN to disconnect KE", || {
        (!connected(&cn, &ke)).then_some(())
    });
    eventually(SOON, "CN to log KE's refused authentication", || {
        cn.log().contains("revoked its key").then_some(())
    });
    assert!(!connected(&cn, &ke));
}

fn rejections(node: &TestNode, from: &TestNode, reason: &str) -> u64 {
    let peers = node.json(&["peers"]);
    peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["fingerprint"].as_str() == Some(from.fingerprint().as_str()))
        .and_then(|p| p["rejections"][reason].as_u64())
        .unwrap_or(0)
}

fn adopted(node: &TestNode) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(node.certs_dir().join("adopted")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_rotated_key_is_adopted_two_hops_away_and_signs_from_then_on() {
    let (mut ke, cn, ng) = line();
    let identity = ke.fingerprint();
    let before = ke.file_test("signed by the first key");
    eventually(SOON, "NG to hold KE's first incident", || {
        has_incident(&ng, &before).then_some(())
    });

    ke.stop();
    let (code, text) = ke.cerd(&["key", "rotate"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("now signs with key"), "{text}");
    let rotated = unix_seconds();
    assert!(ke.data_dir().join("identity.retired.key").exists());
    // KE trusts its own new key as its peers will.
    assert_eq!(adopted(&ke).len(), 3, "{:?}", adopted(&ke));
    ke.spawn();
    assert_eq!(ke.fingerprint(), identity, "the identity stays");

    // NG is not linked to KE: it learns the new key from the transition
    // CN relays, signed by both keys.
    for node in [&cn, &ng] {
        eventually(
            SOON,
            &format!("{} to adopt KE's new key", node.name),
            || {
                let files = adopted(node);
                (files.len() == 3 && node.log().contains("key_adopted")).then_some(files)
            },
        );
    }
    let files = adopted(&ng);
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("KE-CIRT-") && f.ends_with(".asc")),
        "{files:?}"
    );

    let after = ke.file_test("signed by the new key");
    eventually(
        SOON,
        "NG to hold KE's incident signed by the new key",
        || has_incident(&ng, &after).then_some(()),
    );
    let shown = ng.json(&["incident", "show", &after]);
    assert!(shown.to_string().contains(&identity), "{shown}");
    assert!(
        has_incident(&ng, &before),
        "what the old key signed still verifies"
    );

    // A restart of NG reloads the adoption from certs/adopted and still
    // verifies KE's chain (cerd check --store re-verifies every envelope).
    let mut ng = ng;
    ng.stop();
    let (code, text) = ng.cerd(&["check", "--store"]);
    assert_eq!(code, 0, "{text}");
    ng.spawn();
    let again = ke.file_test("after NG restarted");
    eventually(SOON, "NG to hold KE's third incident", || {
        has_incident(&ng, &again).then_some(())
    });

    // Revoking the old key now leaves the new one signing. OpenPGP times
    // are whole seconds: a revocation in the rotation's own second would
    // refuse the transition the old key signed in it.
    eventually(SOON, "the clock to leave the rotation's second", || {
        (unix_seconds() > rotated).then_some(())
    });
    let old_key = ke.dir.path().join("old-key.rev");
    let (code, text) = ke.cerd(&["key", "revoke", "--out", old_key.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    // On KE itself: it signs the revocation's envelope with its new key.
    let added = ke.cerctl(&["certs", "add", old_key.to_str().unwrap()]);
    added.ok();
    eventually(SOON, "NG to apply the old key's revocation", || {
        ng.log().contains("revocation_received").then_some(())
    });
    let last = ke.file_test("after the old key was revoked");
    eventually(SOON, "NG to hold KE's fourth incident", || {
        has_incident(&ng, &last).then_some(())
    });
    assert!(connected(&cn, &ke));
}

#[test]
fn a_transition_signed_only_by_the_new_key_is_refused() {
    let (mut ke, cn, _ng) = line();
    let first = ke.file_test("before the forgery");
    eventually(SOON, "CN to hold KE's incident", || {
        has_incident(&cn, &first).then_some(())
    });
    ke.stop();
    let (code, text) = ke.cerd_env(&["key", "rotate"], &[("CERD_FAULT_FORGE_TRANSITION", "1")]);
    assert_eq!(code, 0, "{text}");
    ke.spawn();
    eventually(SOON, "CN to refuse KE's forged key transition", || {
        (rejections(&cn, &ke, "transition_without_old_key") >= 1).then_some(())
    });
    assert!(adopted(&cn).is_empty(), "{:?}", adopted(&cn));
    assert!(
        cn.log()
            .contains("key transition not signed by the author's current key"),
        "{}",
        cn.log()
    );
}

#[test]
fn a_revocation_added_on_one_node_reaches_every_node_as_an_envelope() {
    let (ke, cn, ng) = line();
    let revocation = ke.data_dir().join("KE-CIRT-revocation.asc");
    // Not on KE itself: what KE signs now would be refused, this too.
    let refused = ke.cerctl(&["certs", "add", revocation.to_str().unwrap()]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("add it on a peer's node"),
        "{refused:?}"
    );
    let added = cn.cerctl(&["certs", "add", revocation.to_str().unwrap()]);
    assert!(added.ok().contains("revoked KE-CIRT"), "{added:?}");
    // NG never saw the file: the key_revocation envelope CN signed brings it.
    eventually(SOON, "NG to apply KE's revocation sent by CN", || {
        let certs = ng.json(&["certs", "list"]);
        let revoked = certs["certs"].as_array().unwrap().iter().any(|c| {
            c["fingerprint"].as_str() == Some(ke.fingerprint().as_str()) && c["revoked"].is_string()
        });
        revoked.then_some(())
    });
    assert!(ng.log().contains("revocation_received"), "{}", ng.log());
    let kept = std::fs::read_dir(ng.certs_dir())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("-revocation"));
    assert!(kept, "NG keeps the revocation in its certs/");
    eventually(SOON, "CN to disconnect KE", || {
        (!connected(&cn, &ke)).then_some(())
    });
}

#[test]
fn an_interrupted_rotation_blocks_the_start_until_it_is_run_again() {
    let mut node = TestNode::new("KE-CIRT");
    node.init();
    node.spawn();
    let identity = node.fingerprint();
    node.file_test("before the rotation");
    node.stop();
    // As if `cerd key rotate` stopped after writing the new key aside.
    let data = node.data_dir();
    std::fs::copy(data.join("identity.key"), data.join("identity.next.key")).unwrap();
    let (code, text) = node.cerd(&["run"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("a key rotation was interrupted"), "{text}");
    assert!(text.contains("cerd key rotate"), "{text}");

    let (code, text) = node.cerd(&["key", "rotate"]);
    assert_eq!(code, 0, "{text}");
    assert!(!data.join("identity.next.key").exists());
    node.spawn();
    assert_eq!(node.fingerprint(), identity);
    let id = node.file_test("after the rotation");
    assert!(has_incident(&node, &id));
    let certs = node.json(&["certs", "list"]);
    let own = &certs["certs"][0];
    assert_eq!(own["own"], true, "{certs}");
    assert!(own["key"].is_string(), "the new key is shown: {certs}");
    node.stop();
    let (code, text) = node.cerd(&["check", "--store"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("identity KE-CIRT ({identity})")),
        "check shows the identity, not the new key: {text}"
    );
}
