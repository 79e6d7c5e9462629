//! `cerctl export`: the signed envelopes, as files `gpg --verify` accepts.

use std::path::Path;

use anyhow::{bail, Context as _};
use base64::Engine as _;
use cer_proto::api::{self, EnvelopeExport, ExportQuery};
use cer_proto::EnvelopeId;

use super::{connect, print_json, Ctx, Io};
use crate::cli::{ExportArgs, ExportFormat};
use crate::exit;
use crate::render::plural;

pub(super) async fn export(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: ExportArgs,
) -> anyhow::Result<i32> {
    if args.since.is_some()
        || args.tlp.is_some()
        || !args.kind.is_empty()
        || args.from.is_some()
        || args.active
        || args.sign
    {
        bail!("--since, --tlp, --type, --from, --active and --sign are for --format stix, misp, misp-feed or csv; envelopes are exported whole, each with its signature");
    }
    let query = ExportQuery {
        format: match args.format {
            ExportFormat::Envelopes => api::ExportFormat::Envelopes,
            // The mapped formats are written by cmd::interop.
            other => bail!("{other:?} is not an envelope export"),
        },
        incident: args.incident,
    };
    let mut client = connect(ctx).await?;
    let Some(dir) = args.out else {
        // JSON is the only way to print envelopes, --json or not: one
        // document, written as the envelopes arrive.
        write!(io.stdout, "{{\"envelopes\":[")?;
        let mut first = true;
        let stdout = &mut *io.stdout;
        client
            .export(&query, |envelope| -> anyhow::Result<()> {
                if !first {
                    write!(stdout, ",")?;
                }
                first = false;
                serde_json::to_writer(&mut *stdout, &envelope)?;
                Ok(())
            })
            .await?;
        writeln!(io.stdout, "]}}")?;
        return Ok(exit::OK);
    };
    // Written in batches as they arrive: an export of any size needs no
    // more memory than one batch.
    let mut written: Vec<EnvelopeId> = Vec::new();
    let mut batch = EnvelopeExport {
        envelopes: Vec::new(),
    };
    client
        .export(&query, |envelope| -> anyhow::Result<()> {
            batch.envelopes.push(envelope);
            if batch.envelopes.len() == WRITE_BATCH {
                written.extend(write_envelopes(&dir, &batch)?);
                batch.envelopes.clear();
            }
            Ok(())
        })
        .await?;
    written.extend(write_envelopes(&dir, &batch)?);
    if ctx.json {
        let ids: Vec<String> = written.iter().map(EnvelopeId::to_hex).collect();
        return print_json(io, &serde_json::json!({ "out": dir, "envelopes": ids }));
    }
    writeln!(
        io.stdout,
        "wrote {} envelope{} to {} (verify with: gpg --verify ID.sig ID.json)",
        written.len(),
        plural(written.len()),
        dir.display()
    )?;
    Ok(exit::OK)
}

/// Envelopes checked and written at a time.
const WRITE_BATCH: usize = 256;

/// Writes `<id>.json` (the exact signed bytes) and `<id>.sig` (the binary
/// detached signature) per envelope of a batch. Every envelope of the
/// batch is checked against its id before any of it is written.
///
/// The directory may be shared or prepared by someone else, so no file in
/// it is trusted: an existing name, symlink included (dangling or not), is
/// refused rather than overwritten or followed. Names are checked before
/// the first write, and each file is still created with `O_EXCL` and
/// `O_NOFOLLOW` so a link planted in between is refused too.
fn write_envelopes(dir: &Path, export: &EnvelopeExport) -> anyhow::Result<Vec<EnvelopeId>> {
    let mut files = Vec::with_capacity(export.envelopes.len());
    for envelope in &export.envelopes {
        if EnvelopeId::of(envelope.json.as_bytes()) != envelope.id {
            bail!(
                "envelope {} in the export does not hash to its id; not writing it",
                envelope.id
            );
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(envelope.sig.trim())
            .with_context(|| {
                format!(
                    "the signature of envelope {} is not valid base64",
                    envelope.id
                )
            })?;
        files.push((envelope.id, envelope.json.as_bytes(), signature));
    }
    let paths = |id: &EnvelopeId| {
        [
            dir.join(format!("{id}.json")),
            dir.join(format!("{id}.sig")),
        ]
    };
    for (id, _, _) in &files {
        for path in paths(id) {
            if let Ok(metadata) = std::fs::symlink_metadata(&path) {
                bail!("{}", already_there(&path, &metadata.file_type()));
            }
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (id, json, signature) in &files {
        let [json_path, sig_path] = paths(id);
        write_new(&json_path, json)?;
        write_new(&sig_path, signature)?;
    }
    Ok(files.into_iter().map(|(id, _, _)| id).collect())
}

/// Creates `path` and writes `bytes` to it, refusing an existing file or
/// a symbolic link in its place.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let file_type = std::fs::symlink_metadata(path).map(|m| m.file_type());
            match file_type {
                Ok(file_type) => bail!("{}", already_there(path, &file_type)),
                Err(_) => bail!(
                    "{} already exists; refusing to overwrite it",
                    path.display()
                ),
            }
        }
        // O_NOFOLLOW on a symlink that appeared after O_EXCL's check.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            bail!(
                "{} is a symbolic link; refusing to write through it",
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
    };
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The refusal for an output name that is already taken.
fn already_there(path: &Path, file_type: &std::fs::FileType) -> String {
    if file_type.is_symlink() {
        format!(
            "{} is a symbolic link; refusing to write through it (export into a new or empty directory)",
            path.display()
        )
    } else {
        format!(
            "{} already exists; refusing to overwrite it (export into a new or empty directory)",
            path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::api::ExportedEnvelope;
    use uuid::Uuid;

    #[test]
    fn envelopes_are_written_byte_for_byte() {
        let dir = std::env::temp_dir().join(format!("cerctl-export-{}", Uuid::new_v4()));
        let json = r#"{"v":1,"kind":"incident"}"#;
        let id = EnvelopeId::of(json.as_bytes());
        let export = EnvelopeExport {
            envelopes: vec![ExportedEnvelope {
                id,
                json: json.into(),
                sig: base64::engine::general_purpose::STANDARD.encode([0x88, 0x75, 0x04]),
            }],
        };
        let written = write_envelopes(&dir, &export).unwrap();
        assert_eq!(written, [id]);
        assert_eq!(
            std::fs::read(dir.join(format!("{id}.json"))).unwrap(),
            json.as_bytes()
        );
        assert_eq!(
            std::fs::read(dir.join(format!("{id}.sig"))).unwrap(),
            [0x88, 0x75, 0x04]
        );
        std::fs::remove_dir_all(&dir).unwrap();

        let mut tampered = export.clone();
        tampered.envelopes[0].json.push(' ');
        assert!(write_envelopes(&dir, &tampered).is_err());
        assert!(!dir.exists(), "nothing is written for a bad export");
    }

    fn one_envelope() -> (EnvelopeId, EnvelopeExport) {
        let json = r#"{"v":1,"kind":"incident"}"#;
        let id = EnvelopeId::of(json.as_bytes());
        let export = EnvelopeExport {
            envelopes: vec![ExportedEnvelope {
                id,
                json: json.into(),
                sig: base64::engine::general_purpose::STANDARD.encode([0x88, 0x75, 0x04]),
            }],
        };
        (id, export)
    }

    #[test]
    fn a_symlink_planted_as_an_output_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let (id, export) = one_envelope();
        let link = out.join(format!("{id}.json"));
        std::os::unix::fs::symlink(&victim, &link).unwrap();

        let message = format!("{:#}", write_envelopes(&out, &export).unwrap_err());
        assert!(message.contains(&link.display().to_string()), "{message}");
        assert!(message.contains("symbolic link"), "{message}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!out.join(format!("{id}.sig")).exists());
    }

    #[test]
    fn a_dangling_symlink_does_not_create_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let target = dir.path().join("created-through-link");
        let (id, export) = one_envelope();
        let link = out.join(format!("{id}.sig"));
        std::os::unix::fs::symlink(&target, &link).unwrap();

        let message = format!("{:#}", write_envelopes(&out, &export).unwrap_err());
        assert!(message.contains(&link.display().to_string()), "{message}");
        assert!(!target.exists(), "nothing is created through the link");
        assert!(!out.join(format!("{id}.json")).exists());
    }

    #[test]
    fn an_existing_file_is_refused_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (id, export) = one_envelope();
        let existing = dir.path().join(format!("{id}.json"));
        std::fs::write(&existing, b"older copy").unwrap();

        let message = format!("{:#}", write_envelopes(dir.path(), &export).unwrap_err());
        assert!(
            message.contains(&existing.display().to_string()),
            "{message}"
        );
        assert!(message.contains("already exists"), "{message}");
        assert_eq!(std::fs::read(&existing).unwrap(), b"older copy");
    }

    #[test]
    fn write_new_refuses_links_that_appear_after_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("late.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let message = format!("{:#}", write_new(&link, b"{}").unwrap_err());
        assert!(message.contains("symbolic link"), "{message}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let dangling = dir.path().join("dangling.sig");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(write_new(&dangling, b"sig").is_err());
        assert!(!dir.path().join("nowhere").exists());
    }
}
