//! `cerctl backup`: an online backup written to a new file, mode 0600
//! (it holds decrypted TLP:AMBER and RED bodies, and the secret key when
//! asked for).

use std::os::unix::fs::OpenOptionsExt as _;

use anyhow::Context as _;
use cer_proto::api::BackupQuery;

use super::{connect, print_json, Ctx, Io};
use crate::cli::BackupArgs;
use crate::exit;

pub(super) async fn backup(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: BackupArgs,
) -> anyhow::Result<i32> {
    let out = &args.out;
    if args.include_secret_key {
        writeln!(
            io.stderr,
            "warning: the backup holds this node's secret key: keep it as you keep the key itself"
        )?;
    }
    let partial = out.with_extension("partial");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut client = connect(ctx).await?;
    let query = BackupQuery {
        include_secret_key: args.include_secret_key,
    };
    let result = async {
        let size = client.backup(&query, &mut writer).await?;
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        // Never over an existing file: a hard link fails if `out` exists.
        std::fs::hard_link(&partial, out)
            .with_context(|| format!("{} exists, or cannot be written", out.display()))?;
        Ok::<_, anyhow::Error>(size)
    }
    .await;
    let _ = std::fs::remove_file(&partial);
    let size = result?;
    if ctx.json {
        print_json(io, &serde_json::json!({ "file": out, "bytes": size }))?;
    } else {
        writeln!(
            io.stdout,
            "wrote {} ({size} bytes); restore with `cerd restore {}`",
            cer_proto::text::escape(&out.display().to_string()),
            cer_proto::text::escape(&out.display().to_string()),
        )?;
    }
    Ok(exit::OK)
}
