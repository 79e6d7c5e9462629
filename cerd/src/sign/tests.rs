//! Unit tests of keys, signatures, the trust store and encryption.
use super::*;

use std::process::Command;
use std::sync::OnceLock;

mod rotation;

/// Key generation is cheap, but sharing keys keeps the tests quick.
fn alice() -> &'static Identity {
    static KEY: OnceLock<Identity> = OnceLock::new();
    KEY.get_or_init(|| Identity::generate("KE-CIRT").expect("generate"))
}

fn bob() -> &'static Identity {
    static KEY: OnceLock<Identity> = OnceLock::new();
    KEY.get_or_init(|| Identity::generate("CN-CERT").expect("generate"))
}

fn store_of(ids: &[&Identity]) -> TrustStore {
    let mut store = TrustStore::new();
    for id in ids {
        store.insert(id.public_cert());
    }
    store
}

#[test]
fn generated_key_has_the_expected_shape() {
    let id = alice();
    assert_eq!(id.name(), "KE-CIRT");
    assert_eq!(id.fingerprint().as_str().len(), 40);
    let primary = id.tsk.primary_key().key();
    assert_eq!(primary.version(), 4);
    assert_eq!(primary.pk_algo(), openpgp::types::PublicKeyAlgorithm::EdDSA);
    let valid = id.tsk.with_policy(&POLICY, None).unwrap();
    assert!(valid.primary_key().for_signing());
    assert!(valid.primary_key().for_certification());
    assert_eq!(valid.primary_key().key_expiration_time(), None);
    assert_eq!(valid.keys().subkeys().count(), 1);
    let sub = valid.keys().subkeys().next().unwrap();
    assert!(sub.for_transport_encryption() && sub.for_storage_encryption());
    assert_eq!(
        sub.key().pk_algo(),
        openpgp::types::PublicKeyAlgorithm::ECDH
    );
    assert_eq!(valid.userids().count(), 1);
    assert!(id.public_cert().can_encrypt());
}

#[test]
fn bad_names_are_refused() {
    for name in ["", "  ", " KE-CIRT", "KE\nCIRT"] {
        assert!(
            matches!(Identity::generate(name), Err(SignError::InvalidName { .. })),
            "{name:?}"
        );
    }
}

#[test]
fn sign_verify_round_trip() {
    let store = store_of(&[alice(), bob()]);
    let data = br#"{"v":1,"seq":1}"#;
    let sig = alice().sign_detached(data);
    assert_eq!(
        store.verify_detached(data, &sig).unwrap(),
        *alice().fingerprint()
    );
    let armored = alice().sign_detached_armored(data);
    assert!(armored.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
    assert_eq!(
        store.verify_detached(data, &armored).unwrap(),
        *alice().fingerprint()
    );
    let sig = bob().sign_detached(data);
    assert_eq!(
        store.verify_detached(data, &sig).unwrap(),
        *bob().fingerprint()
    );
}

#[test]
fn signature_is_one_binary_sha512_packet() {
    let sig = alice().sign_detached(b"x");
    let parsed = parse_one_signature(&sig).unwrap();
    assert_eq!(parsed.typ(), SignatureType::Binary);
    assert_eq!(parsed.hash_algo(), HashAlgorithm::SHA512);
    assert_eq!(parsed.version(), 4);
}

#[test]
fn fast_path_agrees_with_sequoia() {
    let data = b"envelope bytes";
    let sig = parse_one_signature(&alice().sign_detached(data)).unwrap();
    let key = alice().signer.public();
    assert!(sig.verify_message(key, data).is_ok());
    assert!(verify_over(&sig, key, data).is_ok());
    assert!(sig.verify_message(key, b"other bytes").is_err());
    assert!(verify_over(&sig, key, b"other bytes").is_err());
    assert!(verify_over(&sig, bob().signer.public(), data).is_err());
}

#[test]
fn flipped_data_byte_is_a_bad_signature() {
    let store = store_of(&[alice()]);
    let mut data = b"incident body".to_vec();
    let sig = alice().sign_detached(&data);
    data[3] ^= 0x01;
    match store.verify_detached(&data, &sig) {
        Err(VerifyError::BadSignature { signer }) => assert_eq!(signer, *alice().fingerprint()),
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

#[test]
fn flipped_signature_byte_is_refused() {
    let store = store_of(&[alice()]);
    let data = b"incident body";
    let mut sig = alice().sign_detached(data);
    let last = sig.len() - 5;
    sig[last] ^= 0x01;
    assert!(store.verify_detached(data, &sig).is_err());
}

#[test]
fn unknown_signer() {
    let store = store_of(&[alice()]);
    let sig = bob().sign_detached(b"data");
    match store.verify_detached(b"data", &sig) {
        Err(VerifyError::UnknownSigner { issuer }) => {
            assert_eq!(issuer, bob().fingerprint().as_str())
        }
        other => panic!("expected UnknownSigner, got {other:?}"),
    }
    assert!(matches!(
        TrustStore::new().verify_detached(b"data", &sig),
        Err(VerifyError::UnknownSigner { .. })
    ));
}

#[test]
fn removed_cert_is_unknown_again() {
    let mut store = store_of(&[alice(), bob()]);
    let sig = alice().sign_detached(b"data");
    assert!(store.remove(alice().fingerprint()).is_some());
    assert!(store.remove(alice().fingerprint()).is_none());
    assert!(matches!(
        store.verify_detached(b"data", &sig),
        Err(VerifyError::UnknownSigner { .. })
    ));
    assert_eq!(store.len(), 1);
    assert!(store.by_key_fpr.len() == 1 && store.by_key_id.len() == 1);
    store.insert(alice().public_cert());
    store.insert(alice().public_cert());
    assert_eq!(store.len(), 2);
    assert!(store.verify_detached(b"data", &sig).is_ok());
}

#[test]
fn garbage_signatures_are_malformed() {
    let store = store_of(&[alice()]);
    assert!(matches!(
        store.verify_detached(b"data", b""),
        Err(VerifyError::Unsigned)
    ));
    for garbage in [
        &b"garbage"[..],
        &[0xff; 64][..],
        &b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"[..],
        &alice().public_armored()[..],
    ] {
        match store.verify_detached(b"data", garbage) {
            Err(VerifyError::Malformed(_)) => {}
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
    // Two signatures where one is expected.
    let mut two = alice().sign_detached(b"data");
    two.extend(alice().sign_detached(b"data"));
    assert!(matches!(
        store.verify_detached(b"data", &two),
        Err(VerifyError::Malformed(_))
    ));
}

#[test]
fn sha1_signature_is_rejected_by_policy() {
    let store = store_of(&[alice()]);
    let mut signer = alice().signer.clone();
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_hash_algo(HashAlgorithm::SHA1)
        .sign_message(&mut signer, b"data")
        .unwrap();
    let mut bytes = Vec::new();
    Packet::from(sig).serialize(&mut bytes).unwrap();
    assert!(matches!(
        store.verify_detached(b"data", &bytes),
        Err(VerifyError::RejectedByPolicy(_))
    ));
}

#[test]
fn save_then_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    alice().save(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
    let loaded = Identity::load(&path).unwrap();
    assert_eq!(loaded.fingerprint(), alice().fingerprint());
    assert_eq!(loaded.name(), "KE-CIRT");
    // Saving over an existing file replaces it, still 0600, no leftovers.
    loaded.save(&path).unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    // The loaded key signs for the same store entry.
    let store = store_of(&[alice()]);
    let sig = loaded.sign_detached(b"x");
    assert_eq!(
        store.verify_detached(b"x", &sig).unwrap(),
        *alice().fingerprint()
    );
}

#[test]
fn load_refuses_public_certs_and_junk() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public.asc");
    fs::write(&public, alice().public_armored()).unwrap();
    assert!(matches!(
        Identity::load(&public),
        Err(SignError::BadKey { .. })
    ));
    let junk = dir.path().join("junk");
    fs::write(&junk, b"junk").unwrap();
    assert!(matches!(
        Identity::load(&junk),
        Err(SignError::BadKey { .. })
    ));
    let missing = dir.path().join("missing");
    let err = Identity::load(&missing).unwrap_err();
    assert!(matches!(err, SignError::Read { .. }));
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn public_armored_parses_back() {
    let armored = alice().public_armored();
    assert!(armored.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    let cert = TrustedCert::parse(&armored).unwrap();
    assert_eq!(cert.fingerprint(), alice().fingerprint());
    assert_eq!(cert.name(), "KE-CIRT");
    assert!(cert.can_encrypt());
    assert!(cert.check_encryption().is_ok());
    assert_eq!(cert.armored(), armored);
}

#[test]
fn secret_material_is_stripped() {
    let tsk = alice().tsk.as_tsk().to_vec().unwrap();
    let cert = TrustedCert::parse(&tsk).unwrap();
    assert_eq!(cert.fingerprint(), alice().fingerprint());
    let text = String::from_utf8(cert.armored()).unwrap();
    assert!(text.contains("PUBLIC KEY BLOCK"));
    let reparsed = Cert::from_bytes(&cert.armored()).unwrap();
    assert!(!reparsed.is_tsk());
    assert!(cert.had_secret());
    let public = TrustedCert::parse(&cert.armored()).unwrap();
    assert!(!public.had_secret());
}

#[test]
fn refused_certs() {
    let (cert, revocation) = CertBuilder::new()
        .add_userid("REVOKED")
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .generate()
        .unwrap();
    let revoked = cert.insert_packets(revocation).unwrap().0;
    // Kept, to verify what it signed before; nobody encrypts to it.
    let revoked = TrustedCert::parse(&revoked.armored().to_vec().unwrap()).unwrap();
    assert!(revoked.revoked().is_some());
    assert!(!revoked.can_encrypt());

    let created = SystemTime::now() - std::time::Duration::from_secs(7200);
    let (expired, _) = CertBuilder::new()
        .add_userid("EXPIRED")
        .set_creation_time(created)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .set_validity_period(std::time::Duration::from_secs(3600))
        .generate()
        .unwrap();
    assert!(matches!(
        TrustedCert::parse(&expired.to_vec().unwrap()),
        Err(CertError::Expired { .. })
    ));

    let (no_signing, _) = CertBuilder::new()
        .add_userid("CERTIFY-ONLY")
        .add_transport_encryption_subkey()
        .generate()
        .unwrap();
    assert!(matches!(
        TrustedCert::parse(&no_signing.to_vec().unwrap()),
        Err(CertError::NoSigningKey { .. })
    ));

    let (sign_only, _) = CertBuilder::new()
        .add_userid("SIGN-ONLY")
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .generate()
        .unwrap();
    let sign_only = TrustedCert::parse(&sign_only.to_vec().unwrap()).unwrap();
    assert!(!sign_only.can_encrypt());
    assert!(matches!(
        sign_only.check_encryption(),
        Err(CertError::NoEncryptionKey { .. })
    ));
    assert!(matches!(
        TrustStore::encrypt(b"x", &[&sign_only]),
        Err(SignError::NoEncryptionKey(_))
    ));

    let (v6, _) = CertBuilder::general_purpose(Some("V6"))
        .set_profile(Profile::RFC9580)
        .unwrap()
        .generate()
        .unwrap();
    assert!(matches!(
        TrustedCert::parse(&v6.to_vec().unwrap()),
        Err(CertError::UnsupportedVersion { version: 6 })
    ));

    assert!(matches!(
        TrustedCert::parse(b"not a cert"),
        Err(CertError::Parse(_))
    ));
    let mut two = alice().public_armored();
    two.extend(bob().public_armored());
    assert!(matches!(TrustedCert::parse(&two), Err(CertError::Parse(_))));
}

#[test]
fn signing_subkey_verifies_for_its_primary() {
    let (cert, _) = CertBuilder::new()
        .add_userid("SUBKEY-SIGNER")
        .add_signing_subkey()
        .generate()
        .unwrap();
    let subkey = cert.keys().subkeys().secret().next().unwrap().key().clone();
    let mut signer = subkey.role_into_unspecified().into_keypair().unwrap();
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .sign_message(&mut signer, b"data")
        .unwrap();
    let mut bytes = Vec::new();
    Packet::from(sig).serialize(&mut bytes).unwrap();
    let trusted = TrustedCert::parse(&cert.to_vec().unwrap()).unwrap();
    let mut store = TrustStore::new();
    store.insert(trusted.clone());
    assert_eq!(
        store.verify_detached(b"data", &bytes).unwrap(),
        *trusted.fingerprint()
    );
}

#[test]
fn find_by_name_ignores_case() {
    let store = store_of(&[alice(), bob()]);
    assert_eq!(
        store.find_by_name("ke-cirt").unwrap().fingerprint(),
        alice().fingerprint()
    );
    assert_eq!(
        store.find_by_name("CN-CERT").unwrap().fingerprint(),
        bob().fingerprint()
    );
    assert!(store.find_by_name("EG-CERT").is_none());
    assert_eq!(store.iter().count(), 2);
    assert!(!store.is_empty());
}

#[test]
fn encrypt_to_two_both_decrypt_third_cannot() {
    let carol = Identity::generate("EG-CERT").unwrap();
    let plaintext = b"TLP:RED body".to_vec();
    let alice_cert = alice().public_cert();
    let bob_cert = bob().public_cert();
    let message = TrustStore::encrypt(&plaintext, &[&alice_cert, &bob_cert]).unwrap();
    assert_eq!(alice().decrypt(&message).unwrap(), plaintext);
    assert_eq!(bob().decrypt(&message).unwrap(), plaintext);
    assert!(matches!(
        carol.decrypt(&message),
        Err(DecryptError::NotForUs)
    ));

    // SEIPD v1 (tag 18, version 1), PKESK v3, no compression inside.
    let pile = openpgp::PacketPile::from_bytes(&message).unwrap();
    let tags: Vec<_> = pile.children().map(|p| p.tag()).collect();
    assert_eq!(
        tags,
        [
            openpgp::packet::Tag::PKESK,
            openpgp::packet::Tag::PKESK,
            openpgp::packet::Tag::SEIP
        ]
    );
    assert!(matches!(
        pile.children().last().unwrap(),
        Packet::SEIP(openpgp::packet::SEIP::V1(_))
    ));

    assert!(matches!(
        TrustStore::encrypt(b"x", &[]),
        Err(SignError::NoRecipients)
    ));

    let armored = encrypt_armored(&plaintext, &[&alice_cert, &bob_cert]).unwrap();
    assert!(armored.starts_with("-----BEGIN PGP MESSAGE-----"));
    assert_eq!(alice().decrypt_armored(&armored).unwrap(), plaintext);
    assert_eq!(bob().decrypt_armored(&armored).unwrap(), plaintext);
    assert!(matches!(
        carol.decrypt_armored(&armored),
        Err(DecryptError::NotForUs)
    ));
}

#[test]
fn tampered_or_junk_messages_are_refused() {
    let alice_cert = alice().public_cert();
    let plaintext = vec![7u8; 4000];
    let message = TrustStore::encrypt(&plaintext, &[&alice_cert]).unwrap();
    let mut tampered = message.clone();
    let at = tampered.len() - 100;
    tampered[at] ^= 0x40;
    match alice().decrypt(&tampered) {
        Err(DecryptError::Integrity(_)) => {}
        other => panic!("expected Integrity, got {other:?}"),
    }
    assert!(matches!(
        alice().decrypt(b"junk"),
        Err(DecryptError::Malformed(_))
    ));

    // A plain literal message is not an encrypted one.
    let mut sink = Vec::new();
    let mut literal = LiteralWriter::new(Message::new(&mut sink)).build().unwrap();
    literal.write_all(b"plain").unwrap();
    literal.finalize().unwrap();
    assert!(matches!(
        alice().decrypt(&sink),
        Err(DecryptError::Malformed(_))
    ));
}

#[test]
fn load_dir_reports_refused_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ke-cirt.asc"), alice().public_armored()).unwrap();
    fs::write(dir.path().join("broken.pgp"), b"\x99garbage").unwrap();
    fs::write(dir.path().join("README.txt"), b"not a cert").unwrap();
    let (store, errors) = TrustStore::load_dir(dir.path());
    assert_eq!(store.len(), 1);
    assert!(store.get(alice().fingerprint()).is_some());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, dir.path().join("broken.pgp"));
    assert!(matches!(errors[0].1, CertError::Parse(_)));

    // The same certificate twice: the second file is reported.
    fs::write(dir.path().join("zz-copy.asc"), alice().public_armored()).unwrap();
    let (store, errors) = TrustStore::load_dir(dir.path());
    assert_eq!(store.len(), 1);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(matches!(errors[1].1, CertError::Duplicate { .. }));

    let (store, errors) = TrustStore::load_dir(&dir.path().join("absent"));
    assert!(store.is_empty() && errors.is_empty());
}

#[test]
fn load_dir_reports_links_that_lead_nowhere_and_refuses_huge_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("ke-cirt.asc"), alice().public_armored()).unwrap();
    std::os::unix::fs::symlink("loop-b.asc", dir.path().join("loop-a.asc")).unwrap();
    std::os::unix::fs::symlink("loop-a.asc", dir.path().join("loop-b.asc")).unwrap();
    std::os::unix::fs::symlink("absent.asc", dir.path().join("dangling.asc")).unwrap();
    // Sparse: reading it whole would take 200 MB.
    let huge = fs::File::create(dir.path().join("huge.asc")).unwrap();
    huge.set_len(200 << 20).unwrap();
    let (store, errors) = TrustStore::load_dir(dir.path());
    assert_eq!(store.len(), 1);
    let refused: Vec<(String, String)> = errors
        .iter()
        .map(|(path, e)| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, e.to_string())
        })
        .collect();
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert_eq!(refused[0].0, "dangling.asc");
    assert!(refused[0].1.starts_with("cannot read"), "{refused:?}");
    assert_eq!(refused[1].0, "huge.asc");
    assert_eq!(refused[1].1, "larger than 1024 KiB; not a certificate");
    for (name, reason) in &refused[2..] {
        assert!(name.starts_with("loop-"), "{refused:?}");
        assert!(reason.contains("symbolic links"), "{refused:?}");
    }
}

fn gpg_available() -> bool {
    Command::new("gpg").arg("--version").output().is_ok()
}

/// Stops any gpg-agent started for a temporary GNUPGHOME.
struct Agent<'a>(&'a Path);

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.0)
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
        .args(args)
        .output()
        .expect("run gpg")
}

#[test]
fn gnupg_interop() {
    if !gpg_available() {
        println!("skipping: gpg not found");
        return;
    }
    let home = tempfile::Builder::new().prefix("g").tempdir().unwrap();
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let _agent = Agent(home.path());
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("ke-cirt.asc");
    fs::write(&cert, alice().public_armored()).unwrap();
    let out = gpg(home.path(), &["--import", cert.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = gpg(home.path(), &["--with-colons", "--list-keys"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    let fpr_line = format!("fpr:::::::::{}:", alice().fingerprint());
    assert!(listing.contains(&fpr_line), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("pub:") && l.contains(":ed25519:")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("sub:") && l.contains(":cv25519:")),
        "{listing}"
    );
    assert!(
        listing.contains("uid:") && listing.contains("KE-CIRT"),
        "{listing}"
    );

    let data = dir.path().join("envelope.json");
    let body = br#"{"v":1,"author":"x","seq":1}"#;
    fs::write(&data, body).unwrap();
    let binary = dir.path().join("envelope.sig");
    fs::write(&binary, alice().sign_detached(body)).unwrap();
    let armored = dir.path().join("envelope.json.asc");
    fs::write(&armored, alice().sign_detached_armored(body)).unwrap();
    let mut changed = body.to_vec();
    changed[2] ^= 0x01;
    let bad_data = dir.path().join("changed.json");
    fs::write(&bad_data, &changed).unwrap();

    for sig in [&binary, &armored] {
        let out = gpg(
            home.path(),
            &["--verify", sig.to_str().unwrap(), data.to_str().unwrap()],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("Good signature"), "{stderr}");
        assert!(stderr.contains("KE-CIRT"), "{stderr}");

        let out = gpg(
            home.path(),
            &[
                "--verify",
                sig.to_str().unwrap(),
                bad_data.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains("BAD signature"), "{stderr}");
    }
}

#[test]
fn gnupg_decrypts_what_we_encrypt() {
    if !gpg_available() {
        println!("skipping: gpg not found");
        return;
    }
    let home = tempfile::Builder::new().prefix("g").tempdir().unwrap();
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let _agent = Agent(home.path());
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");
    alice().save(&key).unwrap();
    let out = gpg(home.path(), &["--import", key.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let message = dir.path().join("body.pgp");
    let alice_cert = alice().public_cert();
    fs::write(
        &message,
        TrustStore::encrypt(b"restricted body", &[&alice_cert]).unwrap(),
    )
    .unwrap();
    let out = gpg(home.path(), &["--decrypt", message.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"restricted body");
}

/// Many distinct messages in a row, as a peer's catch-up delivers them.
#[test]
fn verifies_many_distinct_messages() {
    let store = store_of(&[alice(), bob()]);
    for i in 0..200 {
        let message = format!(r#"{{"v":1,"seq":{i},"body":"{}"}}"#, "x".repeat(400)).into_bytes();
        let sig = alice().sign_detached(&message);
        assert_eq!(
            store.verify_detached(&message, &sig).unwrap(),
            *alice().fingerprint()
        );
    }
}
