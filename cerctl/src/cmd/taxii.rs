//! `cerctl taxii clients add|list|remove`: the TAXII server's clients.

use cer_proto::api::{AddTaxiiClient, TaxiiClient, TaxiiClientAdded, TaxiiClientList};

use super::{connect, print_json, Ctx, Io};
use crate::cli::TaxiiClientsCommand;
use crate::exit;
use crate::render::one_line;

const PATH: &str = "/v1/taxii/clients";

pub(super) async fn clients(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    command: TaxiiClientsCommand,
) -> anyhow::Result<i32> {
    let mut client = connect(ctx).await?;
    match command {
        TaxiiClientsCommand::Add {
            name,
            max_tlp,
            write,
        } => {
            let request = AddTaxiiClient {
                name,
                max_tlp,
                write,
            };
            let added: TaxiiClientAdded = client.post_json(PATH, &request).await?;
            if ctx.json {
                return print_json(io, &added);
            }
            writeln!(
                io.stdout,
                "added {} (up to TLP:{}{}); its token, shown only now:\n{}",
                one_line(&added.client.name),
                added.client.max_tlp.as_str().to_uppercase(),
                if added.client.write {
                    ", may write"
                } else {
                    ""
                },
                added.token
            )?;
        }
        TaxiiClientsCommand::List => {
            let list: TaxiiClientList = client.get_json(PATH).await?;
            if ctx.json {
                return print_json(io, &list);
            }
            for c in &list.clients {
                writeln!(
                    io.stdout,
                    "{}\tTLP:{}\t{}\tadded {}",
                    one_line(&c.name),
                    c.max_tlp.as_str().to_uppercase(),
                    if c.write { "read-write" } else { "read" },
                    c.added
                )?;
            }
        }
        TaxiiClientsCommand::Remove { name } => {
            let path = format!("{PATH}/{}", encode(&name));
            let removed: TaxiiClient = client.delete_json(&path).await?;
            if ctx.json {
                return print_json(io, &removed);
            }
            writeln!(io.stdout, "removed {}", one_line(&removed.name))?;
        }
    }
    Ok(exit::OK)
}

/// A name as a path segment: names are letters, digits and `- _ .`, and
/// anything else is percent-encoded for the node to refuse by name.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
