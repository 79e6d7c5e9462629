//! Unit tests of revocation, passphrase protection and key rotation.

use super::*;

/// An identity whose key was made two hours ago, so that it can sign with
/// times before now.
fn aged(name: &str) -> Identity {
    let (tsk, _) = CertBuilder::new()
        .set_profile(Profile::RFC4880)
        .unwrap()
        .set_creation_time(SystemTime::now() - std::time::Duration::from_secs(7200))
        .set_cipher_suite(CipherSuite::Cv25519)
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .add_subkey(encryption_flags(), None, None)
        .add_userid(name)
        .generate()
        .unwrap();
    Identity::from_tsk(tsk).unwrap()
}

fn sign_at(identity: &Identity, data: &[u8], at: SystemTime) -> Vec<u8> {
    let mut signer = identity.signer.clone();
    let sig = SignatureBuilder::new(SignatureType::Binary)
        .set_hash_algo(HashAlgorithm::SHA512)
        .set_signature_creation_time(at)
        .unwrap()
        .sign_message(&mut signer, data)
        .unwrap();
    let mut out = Vec::new();
    Packet::from(sig).serialize(&mut out).unwrap();
    out
}

#[test]
fn a_revocation_file_refuses_signatures_from_its_time_on() {
    let eg = aged("EG-CERT");
    let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
    let earlier = sign_at(&eg, b"data", hour_ago);
    let revocation = eg.revocation_certificate().unwrap();
    assert!(is_revocation(&revocation));
    assert!(!is_revocation(&eg.public_armored()));
    assert!(
        String::from_utf8_lossy(&revocation).starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("eg.asc"), eg.public_armored()).unwrap();
    fs::write(dir.path().join("ke.asc"), alice().public_armored()).unwrap();
    let (store, errors) = TrustStore::load_dir(dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    assert!(store.get(eg.fingerprint()).unwrap().revoked().is_none());
    assert_eq!(
        store.check_revocation(&revocation).unwrap(),
        *eg.fingerprint()
    );

    fs::write(dir.path().join("eg-revocation.asc"), &revocation).unwrap();
    let (store, errors) = TrustStore::load_dir(dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    let cert = store.get(eg.fingerprint()).unwrap();
    assert!(cert.revoked().is_some());
    assert!(!cert.can_encrypt());
    assert_eq!(
        store.verify_detached(b"data", &earlier).unwrap(),
        *eg.fingerprint()
    );
    let now = eg.sign_detached(b"data");
    assert!(matches!(
        store.verify_detached(b"data", &now),
        Err(VerifyError::Revoked { .. })
    ));
    // Other certificates are untouched.
    assert!(store
        .get(alice().fingerprint())
        .unwrap()
        .revoked()
        .is_none());
    let sig = alice().sign_detached(b"data");
    assert_eq!(
        store.verify_detached(b"data", &sig).unwrap(),
        *alice().fingerprint()
    );

    // A revocation of a certificate the store does not have is reported.
    fs::remove_file(dir.path().join("eg.asc")).unwrap();
    let (store, errors) = TrustStore::load_dir(dir.path());
    assert_eq!(store.len(), 1);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(matches!(
        errors[0].1,
        CertError::RevocationForUnknown { .. }
    ));
}

#[test]
fn a_revocation_made_by_another_key_is_refused() {
    let eg = aged("EG-CERT");
    // Bob's revocation, relabelled as EG's by its issuer: the signature
    // does not verify with EG's key.
    let forged = bob().revocation_certificate().unwrap();
    let mut store = store_of(&[&eg]);
    assert!(matches!(
        store.check_revocation(&forged),
        Err(CertError::RevocationForUnknown { .. })
    ));
    store.insert(bob().public_cert());
    assert_eq!(
        store.check_revocation(&forged).unwrap(),
        *bob().fingerprint()
    );
    assert!(store.get(eg.fingerprint()).unwrap().revoked().is_none());
}

#[test]
fn a_protected_key_round_trips_and_refuses_a_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.key");
    let passphrase = Passphrase::new(b"correct horse");
    alice().save_with(&path, Some(&passphrase)).unwrap();
    assert!(matches!(
        Identity::load(&path),
        Err(SignError::Locked { .. })
    ));
    assert!(matches!(
        Identity::load_with(&path, Some(&Passphrase::new(b"wrong"))),
        Err(SignError::WrongPassphrase { .. })
    ));
    let loaded = Identity::load_with(&path, Some(&passphrase)).unwrap();
    assert_eq!(loaded.fingerprint(), alice().fingerprint());
    let message = TrustStore::encrypt(b"body", &[&alice().public_cert()]).unwrap();
    assert_eq!(loaded.decrypt(&message).unwrap(), b"body");
    let (public, protected) = Identity::peek(&path).unwrap();
    assert!(protected);
    assert_eq!(public.fingerprint(), alice().fingerprint());

    alice().save(&path).unwrap();
    assert!(!Identity::peek(&path).unwrap().1);
    assert!(Identity::load(&path).is_ok());
}

#[test]
fn split_signatures_takes_one_to_four_packets() {
    let one = alice().sign_detached(b"data");
    assert_eq!(split_signatures(&one).unwrap(), vec![one.clone()]);
    let next = alice().successor().unwrap();
    let two = alice().sign_transition(&next, b"data");
    let parts = split_signatures(&two).unwrap();
    assert_eq!(parts.len(), 2);
    let store = store_of(&[alice()]);
    assert!(store.verify_detached(b"data", &parts[0]).is_ok());
    assert!(next.current_cert().verify_own(b"data", &parts[1]).is_ok());
    // Two packets are not one signature.
    assert!(matches!(
        store.verify_detached(b"data", &two),
        Err(VerifyError::Malformed(_))
    ));
    let five: Vec<u8> = std::iter::repeat_n(one.clone(), 5).flatten().collect();
    assert!(matches!(
        split_signatures(&five),
        Err(VerifyError::Malformed(_))
    ));
    assert!(matches!(split_signatures(b" "), Err(VerifyError::Unsigned)));
    assert!(split_signatures(&alice().public_armored()).is_err());
}

#[test]
fn after_a_rotation_the_identity_stays_and_authentication_carries_both_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity.key");
    let first = aged("EG-CERT");
    let next = first.successor().unwrap();
    let passphrase = Passphrase::new(b"pass");
    next.save_with(&path, Some(&passphrase)).unwrap();
    assert!(dir.path().join("identity.retired.key").exists());
    let loaded = Identity::load_with(&path, Some(&passphrase)).unwrap();
    assert_eq!(loaded.fingerprint(), first.fingerprint());
    assert_eq!(loaded.key_fingerprint(), next.key_fingerprint());
    assert_eq!(
        Identity::peek(&path).unwrap().0.fingerprint(),
        first.fingerprint()
    );
    // What was encrypted to the first key still opens.
    let message = TrustStore::encrypt(b"old", &[&first.public_cert()]).unwrap();
    assert_eq!(loaded.decrypt(&message).unwrap(), b"old");

    // A peer that has not adopted the new key accepts the old one's
    // authentication packet; one that has, the new one's.
    let auth = split_signatures(&loaded.sign_auth(b"exporter")).unwrap();
    assert_eq!(auth.len(), 2);
    let mut before = TrustStore::new();
    before.insert(first.public_cert());
    assert!(before.verify_detached(b"exporter", &auth[0]).is_err());
    assert_eq!(
        before.verify_detached(b"exporter", &auth[1]).unwrap(),
        *first.fingerprint()
    );
    let mut after = before.clone();
    let a_minute_ago = SystemTime::now() - std::time::Duration::from_secs(60);
    after
        .adopt(first.fingerprint(), &next.current_cert(), a_minute_ago)
        .unwrap();
    assert_eq!(
        after.verify_detached(b"exporter", &auth[0]).unwrap(),
        *first.fingerprint()
    );
    assert!(matches!(
        after.verify_detached(b"exporter", &auth[1]),
        Err(VerifyError::Retired { .. })
    ));

    // Revoking the first key after the rotation leaves the new one.
    let revocation = loaded.first_key_revocation().unwrap();
    assert_eq!(
        after.check_revocation(&revocation).unwrap(),
        *first.fingerprint()
    );
}

#[test]
fn gnupg_reads_the_revocation_and_both_signatures_of_a_transition() {
    if !gpg_available() {
        println!("skipping: gpg not found");
        return;
    }
    let home = tempfile::Builder::new().prefix("g").tempdir().unwrap();
    fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
    let _agent = Agent(home.path());
    let dir = tempfile::tempdir().unwrap();
    let eg = Identity::generate("EG-CERT").unwrap();
    let next = eg.successor().unwrap();
    for (name, cert) in [
        ("old.asc", eg.public_armored()),
        ("new.asc", next.current_cert().armored()),
    ] {
        let file = dir.path().join(name);
        fs::write(&file, cert).unwrap();
        let out = gpg(home.path(), &["--import", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let data = dir.path().join("transition.json");
    fs::write(&data, b"{\"kind\":\"key_transition\"}").unwrap();
    let sig = dir.path().join("transition.sig");
    fs::write(
        &sig,
        eg.sign_transition(&next, b"{\"kind\":\"key_transition\"}"),
    )
    .unwrap();
    let out = gpg(
        home.path(),
        &["--verify", sig.to_str().unwrap(), data.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("Good signature").count(), 2, "{stderr}");

    let revocation = dir.path().join("revocation.asc");
    fs::write(&revocation, eg.revocation_certificate().unwrap()).unwrap();
    let out = gpg(home.path(), &["--import", revocation.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("revocation certificate imported"),
        "{stderr}"
    );
    let out = gpg(
        home.path(),
        &["--with-colons", "--list-keys", eg.fingerprint().as_str()],
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.lines().any(|l| l.starts_with("pub:r:")),
        "{listing}"
    );
}
