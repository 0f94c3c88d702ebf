//! What each command prints: text for people, or with `--json` the gateway's answer as JSON.

use std::io::{self, Write};

use serde::Serialize;

use crate::client::{ApiKeyList, CreatedKey, Tenant, TenantList};

pub fn tenant_created(out: &mut impl Write, tenant: &Tenant, json: bool) -> io::Result<()> {
    if json {
        return print_json(out, tenant);
    }
    writeln!(out, "Created tenant {} ({}).", tenant.id, tenant.name)
}

pub fn tenant_list(out: &mut impl Write, list: &TenantList, json: bool) -> io::Result<()> {
    if json {
        return print_json(out, list);
    }
    if list.tenants.is_empty() {
        return writeln!(out, "No tenants.");
    }
    let rows: Vec<_> = list
        .tenants
        .iter()
        .map(|t| vec![t.id.as_str(), t.created_at.as_str(), t.name.as_str()])
        .collect();
    table(out, &["ID", "CREATED", "NAME"], &rows)
}

pub fn key_created(out: &mut impl Write, tenant_id: &str, key: &CreatedKey, json: bool) -> io::Result<()> {
    if json {
        return print_json(out, key);
    }
    writeln!(out, "Issued API key {} ({}) for tenant {tenant_id}:", key.id, key.name)?;
    writeln!(out)?;
    writeln!(out, "    {}", key.key)?;
    writeln!(out)?;
    writeln!(
        out,
        "Store it now: it cannot be shown again. Send it as `Authorization: Bearer <key>`."
    )
}

pub fn key_list(out: &mut impl Write, list: &ApiKeyList, json: bool) -> io::Result<()> {
    if json {
        return print_json(out, list);
    }
    if list.api_keys.is_empty() {
        return writeln!(out, "No API keys.");
    }
    let rows: Vec<_> = list
        .api_keys
        .iter()
        .map(|k| {
            vec![
                k.id.as_str(),
                k.display_prefix.as_str(),
                k.created_at.as_str(),
                k.revoked_at.as_deref().unwrap_or("-"),
                k.name.as_str(),
            ]
        })
        .collect();
    table(out, &["ID", "PREFIX", "CREATED", "REVOKED", "NAME"], &rows)
}

pub fn key_revoked(out: &mut impl Write, tenant_id: &str, key_id: &str, json: bool) -> io::Result<()> {
    if json {
        return print_json(
            out,
            &serde_json::json!({ "tenant_id": tenant_id, "key_id": key_id, "revoked": true }),
        );
    }
    writeln!(out, "Revoked API key {key_id} of tenant {tenant_id}.")
}

fn print_json(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(io::Error::other)?;
    writeln!(out)
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
fn table(out: &mut impl Write, header: &[&str], rows: &[Vec<&str>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[&str]| -> io::Result<()> {
        let last = cells.len().saturating_sub(1);
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                writeln!(out, "{cell}")?;
            } else {
                write!(out, "{cell:<width$}  ")?;
            }
        }
        Ok(())
    };
    line(header)?;
    for row in rows {
        line(row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ApiKey;

    fn text(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn key_listings_align_and_mark_revoked_keys() {
        let list = ApiKeyList {
            api_keys: vec![
                ApiKey {
                    id: "key_1".into(),
                    name: "backend".into(),
                    display_prefix: "yy_abcdefg".into(),
                    created_at: "2026-01-01T00:00:00Z".into(),
                    revoked_at: None,
                },
                ApiKey {
                    id: "key_22".into(),
                    name: "old".into(),
                    display_prefix: "yy_hijklmn".into(),
                    created_at: "2026-01-02T00:00:00Z".into(),
                    revoked_at: Some("2026-01-03T00:00:00.5Z".into()),
                },
            ],
        };
        assert_eq!(
            text(|out| key_list(out, &list, false)),
            "ID      PREFIX      CREATED               REVOKED                 NAME\n\
             key_1   yy_abcdefg  2026-01-01T00:00:00Z  -                       backend\n\
             key_22  yy_hijklmn  2026-01-02T00:00:00Z  2026-01-03T00:00:00.5Z  old\n"
        );
        let json: serde_json::Value = serde_json::from_str(&text(|out| key_list(out, &list, true))).expect("json");
        assert_eq!(json["api_keys"][0]["revoked_at"], serde_json::Value::Null);
    }

    #[test]
    fn a_created_key_is_printed_with_the_warning() {
        let key = CreatedKey {
            id: "key_1".into(),
            name: "backend".into(),
            display_prefix: "yy_abcdefg".into(),
            key: "yy_abcdefghijklmnopqrstuvwxyz0123456789ABCD".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        };
        let printed = text(|out| key_created(out, "ten_1", &key, false));
        assert!(printed.contains("\n    yy_abcdefghijklmnopqrstuvwxyz0123456789ABCD\n"));
        assert!(printed.contains("cannot be shown again"));
        assert_eq!(
            text(|out| tenant_list(out, &TenantList { tenants: vec![] }, false)),
            "No tenants.\n"
        );
    }
}
