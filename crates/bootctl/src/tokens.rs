//! `bootctl token create|list|revoke` and `bootctl audit`.

use crate::client::{Client, CtlError};
use crate::output::{or_dash, table};
use bootd_api::{routes, AuditEntry, TokenCreate, TokenCreated, TokenInfo};
use clap::Subcommand;
use hyper::Method;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue an API token; it is printed once (only its hash is stored).
    Create {
        name: String,
        /// viewer (reads the fleet) or operator (also changes nodes over TCP with
        /// `[http] operator_api`).
        #[arg(long, value_parser = ["viewer", "operator"])]
        role: String,
        /// Lifetime, e.g. 30d, 12h.
        #[arg(long, value_parser = crate::duration)]
        expires: Option<std::time::Duration>,
    },
    /// Every token (names, roles, expiry; never the tokens).
    List,
    /// Revoke a token at once.
    Revoke { name: String },
}

pub async fn run(client: &Client, cmd: TokenCommand, json: bool) -> Result<(), CtlError> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            expires,
        } => {
            let body = TokenCreate {
                name,
                role,
                expires_in: expires.map(|d| d.as_secs()),
            };
            let a = client
                .call::<TokenCreated>(Method::POST, routes::TOKENS, &body)
                .await?;
            if json {
                println!("{}", a.raw);
            } else {
                println!("{}", a.body.token);
                eprintln!(
                    "token {} ({}) created; it is shown only this once",
                    a.body.info.name, a.body.info.role
                );
            }
        }
        TokenCommand::List => {
            let a = client.get::<Vec<TokenInfo>>(routes::TOKENS).await?;
            if json {
                println!("{}", a.raw);
            } else {
                let rows: Vec<Vec<String>> = a
                    .body
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.role.clone(),
                            t.created_at.clone(),
                            or_dash(&t.expires_at),
                            or_dash(&t.revoked_at),
                        ]
                    })
                    .collect();
                table(&["NAME", "ROLE", "CREATED", "EXPIRES", "REVOKED"], &rows);
            }
        }
        TokenCommand::Revoke { name } => {
            let a = client
                .call::<serde_json::Value>(Method::DELETE, &routes::token(&name), &())
                .await?;
            if json {
                println!("{}", a.raw);
            } else {
                println!("revoked {name}");
            }
        }
    }
    Ok(())
}

/// `bootctl audit [--since 1h]`.
pub async fn audit(
    client: &Client,
    since: Option<std::time::Duration>,
    json: bool,
) -> Result<(), CtlError> {
    let from = since.map_or(0, |d| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|n| n.as_secs())
            .unwrap_or(0);
        i64::try_from(now.saturating_sub(d.as_secs())).unwrap_or(0)
    });
    let a = client.get::<Vec<AuditEntry>>(&routes::audit(from)).await?;
    if json {
        println!("{}", a.raw);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = a
        .body
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.who.clone(),
                e.action.clone(),
                e.target.clone(),
                format!("{} → {}", e.before, e.after),
            ]
        })
        .collect();
    table(&["AT", "WHO", "ACTION", "TARGET", "CHANGE"], &rows);
    Ok(())
}
