//! The ACL matrix: for every entity and both roles, what create, read, update, delete and their
//! bulk forms do, compared with what the catalog's `acl` says. The expectations are written
//! from the catalog's rules (below), not from the gateway's code:
//! - `public` and `user`: every caller; `admin`: admins; `self`: the row's owner only.
//! - A row the caller may not read, or may not change while it may change others (`self`),
//!   looks missing (NOT_FOUND); an operation its role may not make at all is FORBIDDEN.
//! - Append-only entities are never updated or deleted through the API.
//! - Read rules beyond the acl (`members`, `readableWith`): a members-only row is read by its
//!   owner and members only (the matrix adds no members; the fixtures make rows with
//!   `privateWhen` open), and a row that is `readableWith` its parent only by who reads that
//!   parent (the fixtures create parents as the admin's).

use gateway::graphql::meta::metadata;
use gateway::graphql::meta::{AclRole, EntityMeta, EntityScope};
use serde_json::{json, Map, Value as Json};

use crate::harness::TestApp;
use crate::sweep::{can, update_patch, upper_first, Fixtures};

/// Whether `roles` let a caller (admin or not) act on a row (its own or not).
fn permits(roles: &[AclRole], admin: bool, own_row: bool, has_owner: bool) -> bool {
    roles.iter().any(|r| match r {
        AclRole::Public | AclRole::User => true,
        AclRole::Admin => admin,
        AclRole::Owner => has_owner && own_row,
        // Neither caller of the matrix is the platform operator (see `global_rows`).
        AclRole::Platform => false,
    })
}

/// Whether the read rules let a caller (admin or not) reach a row (its own or not).
fn rules_let(m: &EntityMeta, admin: bool, own_row: bool) -> bool {
    if m.members.is_some_and(|x| x.private_when.is_none()) && !own_row {
        return false;
    }
    parent(m).is_none_or(|p| rules_let(p, admin, admin))
}

/// The entity a `readableWith` row belongs to.
fn parent(m: &EntityMeta) -> Option<&'static EntityMeta> {
    let name = m.readable_with?;
    let rel = m.relations.iter().find(|r| r.name == name)?;
    metadata().entity(rel.target)
}

/// The expected outcome of a write: "ok", "FORBIDDEN" or "NOT_FOUND".
fn expected_write(m: &EntityMeta, roles: &[AclRole], admin: bool, own_row: bool) -> &'static str {
    let has_owner = m.owner.is_some();
    if m.append_only || !permits(roles, admin, true, has_owner) {
        "FORBIDDEN"
    } else if permits(roles, admin, own_row, has_owner) && rules_let(m, admin, own_row) {
        "ok"
    } else {
        "NOT_FOUND"
    }
}

/// "ok" or the first error's code.
fn outcome(res: &Json) -> String {
    match res["errors"][0]["extensions"]["code"].as_str() {
        Some(code) => code.to_string(),
        None => "ok".to_string(),
    }
}

struct Caller<'a> {
    name: &'static str,
    token: &'a str,
    id: String,
    admin: bool,
}

#[tokio::test]
async fn every_entity_and_role_gets_what_its_acl_says() {
    let app = TestApp::new().await;
    let admin = Caller {
        name: "admin",
        token: &app.a.admin,
        id: app.a.admin_id.to_string(),
        admin: true,
    };
    let user = Caller {
        name: "user",
        token: &app.a.user,
        id: app.a.user_id.to_string(),
        admin: false,
    };
    let mut wrong = Vec::new();
    let mut cells = 0;
    let mut check = |what: String, want: String, got: String| {
        cells += 1;
        if want != got {
            wrong.push(format!("{what}: expected {want}, got {got}"));
        }
    };
    for m in metadata().entities.iter().copied() {
        if m.scope == EntityScope::TenantRoot || !can(m.acl.create) {
            continue;
        }
        let has_owner = m.owner.is_some();
        let (n, s) = (m.name, m.singular);
        let pl = upper_first(m.plural);
        let get = format!("query($id: ID!) {{ {s}(id: $id) {{ id }} }}");
        let create = format!("mutation($i: {n}CreateInput!) {{ create{n}(input: $i) {{ id }} }}");
        // One row of each caller's own, where its role may create one.
        let mut own: Vec<(&Caller, Option<String>)> = Vec::new();
        for c in [&admin, &user] {
            // Parents of their own, so that unique keys over references cannot collide.
            let mut fx = Fixtures::new(&app, &app.a.admin);
            fx.set_me(admin.id.clone());
            let mut input: Map<String, Json> = fx.input(m).await;
            // Fields only an admin may set are left to their defaults by others.
            if !c.admin {
                input.retain(|k, _| {
                    m.columns
                        .iter()
                        .find(|col| col.field == k.as_str())
                        .is_none_or(|col| col.set_by.is_empty())
                });
            }
            let owner_col = m.owner.and_then(|o| m.column(o));
            if let Some(col) = owner_col.filter(|col| col.writable) {
                input.insert(col.field.to_string(), json!(c.id));
            }
            let res = app.gql(c.token, &create, json!({ "i": input })).await;
            let want = if !permits(m.acl.create, c.admin, true, has_owner) {
                "FORBIDDEN"
            } else if parent(m).is_some_and(|p| !rules_let(p, c.admin, c.admin)) {
                // Its parent is a row the caller cannot read.
                "BAD_USER_INPUT"
            } else {
                "ok"
            };
            check(
                format!("{n} create as {}", c.name),
                want.into(),
                outcome(&res),
            );
            own.push((
                c,
                res["data"][format!("create{n}")]["id"]
                    .as_str()
                    .map(String::from),
            ));
        }
        // Each caller against each row: its own and the other's.
        for c in [&admin, &user] {
            for (owner, row) in &own {
                let Some(row) = row else { continue };
                let mine = owner.id == c.id;
                let whose = if mine { "own" } else { "other's" };
                let visible =
                    permits(m.acl.read, c.admin, mine, has_owner) && rules_let(m, c.admin, mine);
                let res = app.gql(c.token, &get, json!({ "id": row })).await;
                let got = match (outcome(&res).as_str(), res["data"][s].is_object()) {
                    ("ok", true) => "visible".to_string(),
                    ("ok", false) => "missing".to_string(),
                    (code, _) => code.to_string(),
                };
                check(
                    format!("{n} read {whose} as {}", c.name),
                    if visible { "visible" } else { "missing" }.into(),
                    got,
                );
                let listed = app
                    .gql(
                        c.token,
                        &format!("query($id: ID!) {{ {}(where: {{ id: {{ equals: $id }} }}) {{ totalCount }} }}", m.plural),
                        json!({ "id": row }),
                    )
                    .await;
                check(
                    format!("{n} count {whose} as {}", c.name),
                    if visible { "1" } else { "0" }.into(),
                    listed["data"][m.plural]["totalCount"].to_string(),
                );
                if let Some((field, value)) = update_patch(m) {
                    let res = app
                        .gql(
                            c.token,
                            &format!("mutation($id: ID!, $i: {n}UpdateInput!) {{ update{n}(id: $id, input: $i) {{ id }} }}"),
                            json!({ "id": row, "i": { field: value } }),
                        )
                        .await;
                    check(
                        format!("{n} update {whose} as {}", c.name),
                        expected_write(m, m.acl.update, c.admin, mine).into(),
                        outcome(&res),
                    );
                }
            }
        }
        // Bulk forms over both rows change exactly the rows the caller may change.
        let ids: Vec<&String> = own.iter().filter_map(|(_, r)| r.as_ref()).collect();
        for c in [&user, &admin] {
            let may = |roles: &[AclRole]| {
                own.iter()
                    .filter(|(o, r)| {
                        r.is_some()
                            && permits(roles, c.admin, o.id == c.id, has_owner)
                            && rules_let(m, c.admin, o.id == c.id)
                    })
                    .count()
            };
            let bulk = |verb: &str, roles: &[AclRole]| {
                if m.append_only || !permits(roles, c.admin, true, has_owner) {
                    "FORBIDDEN".to_string()
                } else {
                    format!("{verb} {}", may(roles))
                }
            };
            if let Some((field, value)) = update_patch(m) {
                let res = app
                    .gql(
                        c.token,
                        &format!("mutation($ids: [ID!], $i: {n}UpdateInput!) {{ update{pl}(where: {{ id: {{ in: $ids }} }}, input: $i) {{ id }} }}"),
                        json!({ "ids": ids, "i": { field: value } }),
                    )
                    .await;
                let got = match res["data"][format!("update{pl}")].as_array() {
                    Some(rows) => format!("updated {}", rows.len()),
                    None => outcome(&res),
                };
                check(
                    format!("{n} bulk update as {}", c.name),
                    bulk("updated", m.acl.update),
                    got,
                );
            }
        }
        // Deletes last: one by id each way, then in bulk what is left.
        for c in [&user, &admin] {
            for (owner, row) in &own {
                let Some(row) = row else { continue };
                let mine = owner.id == c.id;
                let still_there = app.gql(&app.a.admin, &get, json!({ "id": row })).await;
                if !still_there["data"][s].is_object() {
                    continue;
                }
                let res = app
                    .gql(
                        c.token,
                        &format!("mutation($id: ID!) {{ delete{n}(id: $id) {{ id }} }}"),
                        json!({ "id": row }),
                    )
                    .await;
                check(
                    format!(
                        "{n} delete {} as {}",
                        if mine { "own" } else { "other's" },
                        c.name
                    ),
                    expected_write(m, m.acl.delete, c.admin, mine).into(),
                    outcome(&res),
                );
            }
        }
        let res = app
            .gql(
                user.token,
                &format!("mutation($ids: [ID!]) {{ delete{pl}(where: {{ id: {{ in: $ids }} }}) {{ id }} }}"),
                json!({ "ids": ids }),
            )
            .await;
        if m.append_only || !permits(m.acl.delete, false, true, has_owner) {
            check(
                format!("{n} bulk delete as user"),
                "FORBIDDEN".into(),
                outcome(&res),
            );
        }
    }
    assert!(cells > 500, "only {cells} cells checked");
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn subscription_events_follow_the_read_acl_at_delivery() {
    use crate::subscriptions::{acked, recv, send};
    use std::time::Duration;
    let app = TestApp::new().await;
    let addr = app.listen().await;
    // The ordinary user: Notification is readable by its owner (`self`), SystemConfig by
    // admins only.
    let mut ws = acked(addr, &app.a.user).await;
    for (id, query) in [
        (
            "mine",
            "subscription { notificationChanged { node { id userId title } } }",
        ),
        (
            "config",
            "subscription { systemConfigChanged { node { id key } } }",
        ),
    ] {
        send(
            &mut ws,
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let notify = "mutation($u: ID!, $t: String!) { createNotification(input: {userId: $u, title: $t, message: \"m\"}) { id } }";
    for (user, title) in [
        (app.a.admin_id, "for the admin"),
        (app.a.user_id, "for the user"),
    ] {
        app.ok(&app.a.admin, notify, json!({ "u": user, "t": title }))
            .await;
    }
    app.ok(
        &app.a.admin,
        "mutation { createSystemConfig(input: {key: \"k\", value: {}}) { id } }",
        json!({}),
    )
    .await;
    let mut seen = Vec::new();
    while let Some(m) = recv(&mut ws, Duration::from_millis(1500)).await {
        seen.push(m);
    }
    let titles: Vec<&str> = seen
        .iter()
        .filter(|m| m["id"] == "mine")
        .filter_map(|m| m["payload"]["data"]["notificationChanged"]["node"]["title"].as_str())
        .collect();
    assert_eq!(titles, ["for the user"], "{seen:?}");
    assert!(
        seen.iter()
            .all(|m| m["id"] != "config" || m["type"] != "next"),
        "an admin-only row reached a user: {seen:?}"
    );
}
