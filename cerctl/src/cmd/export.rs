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
    let query = ExportQuery {
        format: match args.format {
            ExportFormat::Envelopes => api::ExportFormat::Envelopes,
        },
        incident: args.incident,
    };
    let export = connect(ctx).await?.export(&query).await?;
    let Some(dir) = args.out else {
        // JSON is the only way to print envelopes, --json or not.
        return print_json(io, &export);
    };
    let written = write_envelopes(&dir, &export)?;
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

/// Writes `<id>.json` (the exact signed bytes) and `<id>.sig` (the binary
/// detached signature) per envelope. Every envelope is checked against
/// its id before anything is written, so a bad export leaves no files.
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
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (id, json, signature) in &files {
        let json_path = dir.join(format!("{id}.json"));
        std::fs::write(&json_path, json)
            .with_context(|| format!("cannot write {}", json_path.display()))?;
        let sig_path = dir.join(format!("{id}.sig"));
        std::fs::write(&sig_path, signature)
            .with_context(|| format!("cannot write {}", sig_path.display()))?;
    }
    Ok(files.into_iter().map(|(id, _, _)| id).collect())
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
}
