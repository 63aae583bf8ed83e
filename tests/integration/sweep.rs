//! The sweep over every entity of the catalog, driven by the generated metadata: create, get,
//! list with filter, order and paging, update and delete as the owning tenant; then the same
//! operations attempted from a second tenant, which must behave as if the row did not exist.

use std::collections::HashMap;

use gateway::graphql::meta::metadata;
use gateway::graphql::meta::{ColumnMeta, ColumnType, EntityMeta, EntityScope};
use serde_json::{json, Map, Value as Json};

use crate::harness::TestApp;

pub fn meta(name: &str) -> &'static EntityMeta {
    metadata()
        .entities
        .iter()
        .find(|m| m.name == name)
        .copied()
        .unwrap_or_else(|| panic!("no entity {name}"))
}

pub fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Every scalar field of an entity, as a selection set.
pub fn selection(m: &EntityMeta) -> String {
    m.columns
        .iter()
        .map(|c| c.field)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn can(roles: &[gateway::graphql::meta::AclRole]) -> bool {
    !roles.is_empty()
}

/// Creates rows for the sweep, parents first, remembering one row per entity.
pub struct Fixtures<'a> {
    app: &'a TestApp,
    token: String,
    made: HashMap<&'static str, String>,
}

impl<'a> Fixtures<'a> {
    pub fn new(app: &'a TestApp, token: &str) -> Self {
        Fixtures {
            app,
            token: token.to_string(),
            made: HashMap::new(),
        }
    }

    fn text(&mut self, col: &ColumnMeta) -> String {
        // Unique across every fixture set of the process: several may share a database.
        static SERIAL: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let mut s = format!("{}-{}", col.field, serial);
        if let Some(max) = col.max_length {
            let keep = (max as usize).min(s.len());
            s = s[s.len() - keep..].to_string();
        }
        while col.min_length.is_some_and(|m| s.len() < m as usize) {
            s.push('x');
        }
        s
    }

    fn number(col: &ColumnMeta) -> f64 {
        let mut v: f64 = 1.0;
        if let Some(min) = col.min {
            v = v.max(min);
        }
        if let Some(max) = col.max {
            v = v.min(max);
        }
        v
    }

    /// A value for `col` that passes the catalog's checks; parents are created on demand.
    pub async fn value(&mut self, col: &'static ColumnMeta) -> Json {
        match (col.ty, col.list) {
            (ColumnType::Uuid, false) => match col.references {
                Some(target) => Json::String(Box::pin(self.row(target)).await),
                None => Json::String(uuid::Uuid::now_v7().to_string()),
            },
            (ColumnType::Uuid, true) => json!([uuid::Uuid::now_v7().to_string()]),
            (ColumnType::Text, false) => Json::String(self.text(col)),
            (ColumnType::Text, true) => json!(["alpha", "beta"]),
            (ColumnType::Int, false) => json!(Self::number(col) as i64),
            (ColumnType::Int, true) => json!([1, 2]),
            (ColumnType::BigInt, _) => json!(format!("{}", Self::number(col) as i64)),
            (ColumnType::Float, _) => json!(Self::number(col)),
            (ColumnType::Decimal, _) => json!(format!("{}", Self::number(col))),
            (ColumnType::Bool, _) => json!(true),
            (ColumnType::DateTime, _) => json!("2026-01-02T03:04:05Z"),
            (ColumnType::Json, _) => json!({ "k": [1, "two"] }),
            (ColumnType::Enum(_), _) => json!(col.enum_values[0]),
        }
    }

    /// A create input with every writable field set.
    pub async fn input(&mut self, m: &'static EntityMeta) -> Map<String, Json> {
        let mut input = Map::new();
        for col in m.columns.iter().filter(|c| c.writable) {
            // Optional references stay empty: self-references would never end.
            if col.references.is_some() && col.nullable {
                continue;
            }
            let v = self.value(col).await;
            input.insert(col.field.to_string(), v);
        }
        // Members-only rows are made open (`privateWhen` false), so that every role can use
        // them as the ACL says; private ones are the chat tests' subject.
        if let Some(flag) = m
            .members
            .and_then(|mm| mm.private_when)
            .and_then(|c| m.column(c))
        {
            input.insert(flag.field.to_string(), json!(false));
        }
        // Rows owned by somebody belong to the caller, as the ACL expects of ordinary users.
        if let Some(owner) = m.owner.and_then(|o| m.column(o)) {
            if owner.writable && owner.references == Some("User") {
                if let Some(me) = self.me() {
                    input.insert(owner.field.to_string(), Json::String(me));
                }
            }
        }
        input
    }

    fn me(&self) -> Option<String> {
        self.made.get("__me").cloned()
    }

    pub fn set_me(&mut self, id: String) {
        self.made.insert("__me", id);
    }

    /// The id of a row of `entity`, created if needed.
    pub async fn row(&mut self, entity: &'static str) -> String {
        if entity == "User" {
            if let Some(me) = self.me() {
                return me;
            }
        }
        if let Some(id) = self.made.get(entity) {
            return id.clone();
        }
        let m = meta(entity);
        assert!(
            can(m.acl.create),
            "{entity} is referenced by the sweep but cannot be created through the API"
        );
        let input = self.input(m).await;
        let q = format!(
            "mutation($i: {}CreateInput!) {{ create{}(input: $i) {{ id }} }}",
            m.name, m.name
        );
        // Global rows are the platform operator's to write.
        let token = if m.scope == EntityScope::Global {
            &self.app.a.platform
        } else {
            &self.token
        };
        let data = self.app.ok(token, &q, json!({ "i": input })).await;
        let id = data[format!("create{}", m.name)]["id"]
            .as_str()
            .expect("id")
            .to_string();
        self.made.insert(m.name, id.clone());
        id
    }
}

fn list_query(m: &EntityMeta) -> String {
    format!(
        "query($w: {n}Where, $o: [{n}OrderBy!], $f: Int) {{ {p}(where: $w, orderBy: $o, first: $f) {{ totalCount edges {{ cursor node {{ id }} }} nodes {{ {sel} }} pageInfo {{ hasNextPage endCursor }} }} }}",
        n = m.name,
        p = m.plural,
        sel = selection(m)
    )
}

/// A writable scalar to change on update, with a new value.
pub fn update_patch(m: &'static EntityMeta) -> Option<(&'static str, Json)> {
    for c in m
        .columns
        .iter()
        .filter(|c| c.writable && !c.list && c.set_by.is_empty())
    {
        let v = match c.ty {
            ColumnType::Text if !c.unique => json!("changed"),
            ColumnType::Bool => json!(false),
            ColumnType::Json => json!({ "changed": true }),
            ColumnType::DateTime => json!("2027-05-06T07:08:09Z"),
            _ => continue,
        };
        if c.ty == ColumnType::Text
            && (c.min_length.is_some_and(|n| n > 7) || c.max_length.is_some_and(|n| n < 7))
        {
            continue;
        }
        return Some((c.field, v));
    }
    None
}

#[tokio::test]
async fn every_entity_through_the_api_and_isolated_from_other_tenants() {
    let app = TestApp::new().await;
    let mut fx = Fixtures::new(&app, &app.a.admin);
    fx.set_me(app.a.admin_id.to_string());
    let mut checked = 0;
    for m in metadata().entities.iter().copied() {
        let one = format!("{{ {}(id: $id) {{ {} }} }}", m.singular, selection(m));
        let get = format!("query($id: ID!) {one}");
        let list = list_query(m);

        if m.scope == EntityScope::TenantRoot {
            // The caller's own tenant row is visible, nobody else's.
            let own = app.ok(&app.a.admin, &get, json!({ "id": app.a.id })).await;
            assert_eq!(own[m.singular]["id"], json!(app.a.id.to_string()));
            let other = app.ok(&app.a.admin, &get, json!({ "id": app.b.id })).await;
            assert!(other[m.singular].is_null(), "tenant B visible to A");
            let all = app.ok(&app.a.admin, &list, json!({})).await;
            assert_eq!(all[m.plural]["totalCount"], json!(1));
            continue;
        }
        if !can(m.acl.create) {
            // Created only by domain operations: reading must still work and be scoped.
            let all = app.ok(&app.a.admin, &list, json!({ "f": 5 })).await;
            assert!(all[m.plural]["totalCount"].is_i64(), "{}: {all}", m.name);
            continue;
        }

        // Create. Global rows are the platform operator's to write.
        let writer = if m.scope == EntityScope::Global {
            &app.a.platform
        } else {
            &app.a.admin
        };
        let input = fx.input(m).await;
        let create = format!(
            "mutation($i: {n}CreateInput!) {{ create{n}(input: $i) {{ {sel} }} }}",
            n = m.name,
            sel = selection(m)
        );
        let created = app.ok(writer, &create, json!({ "i": input })).await;
        let row = created[format!("create{}", m.name)].clone();
        let id = row["id"].as_str().expect("id").to_string();
        for (k, v) in &input {
            let got = &row[k.as_str()];
            let same = match (v, got) {
                (Json::String(a), Json::String(b)) if a.ends_with('Z') => {
                    chrono::DateTime::parse_from_rfc3339(a).ok()
                        == chrono::DateTime::parse_from_rfc3339(b).ok()
                }
                (Json::String(a), Json::String(b)) => {
                    a == b || a.parse::<f64>().ok() == b.parse::<f64>().ok()
                }
                (Json::Number(a), Json::Number(b)) => a.as_f64() == b.as_f64(),
                _ => v == got,
            };
            assert!(same, "{}.{k}: sent {v}, got {got}", m.name);
        }

        // Get.
        let got = app.ok(&app.a.admin, &get, json!({ "id": id })).await;
        assert_eq!(got[m.singular], row, "{}: get differs from create", m.name);

        // List: filter on id, ordered, one per page.
        let listed = app
            .ok(
                &app.a.admin,
                &list,
                json!({ "w": { "id": { "equals": id } }, "o": [{ "createdAt": "DESC" }], "f": 1 }),
            )
            .await;
        assert_eq!(
            listed[m.plural]["totalCount"],
            json!(1),
            "{}: {listed}",
            m.name
        );
        assert_eq!(listed[m.plural]["nodes"][0], row);
        assert_eq!(listed[m.plural]["pageInfo"]["hasNextPage"], json!(false));

        // Tenant B sees nothing of it.
        if m.scope == EntityScope::Tenant {
            let other = app.ok(&app.b.admin, &get, json!({ "id": id })).await;
            assert!(
                other[m.singular].is_null(),
                "{}: visible to tenant B",
                m.name
            );
            let other = app
                .ok(
                    &app.b.admin,
                    &list,
                    json!({ "w": { "id": { "equals": id } } }),
                )
                .await;
            assert_eq!(
                other[m.plural]["totalCount"],
                json!(0),
                "{}: counted for B",
                m.name
            );
        }

        // Update.
        if can(m.acl.update) && !m.append_only {
            if let Some((field, value)) = update_patch(m) {
                let q = format!(
                    "mutation($id: ID!, $i: {n}UpdateInput!) {{ update{n}(id: $id, input: $i) {{ id {field} }} }}",
                    n = m.name
                );
                let vars = json!({ "id": id, "i": { field: value } });
                if m.scope == EntityScope::Tenant {
                    let (code, _) = app.err(&app.b.admin, &q, vars.clone()).await;
                    assert_eq!(code, "NOT_FOUND", "{}: tenant B update", m.name);
                }
                let updated = app.ok(writer, &q, vars).await;
                let got = &updated[format!("update{}", m.name)][field];
                if value.is_string() && value.as_str().is_some_and(|s| s.ends_with('Z')) {
                    assert!(got.is_string(), "{}.{field}", m.name);
                } else {
                    assert_eq!(got, &value, "{}.{field} after update", m.name);
                }
            }
        }

        // Delete.
        if can(m.acl.delete) && !m.append_only {
            let q = format!(
                "mutation($id: ID!) {{ delete{n}(id: $id) {{ id }} }}",
                n = m.name
            );
            if m.scope == EntityScope::Tenant {
                let (code, _) = app.err(&app.b.admin, &q, json!({ "id": id })).await;
                assert_eq!(code, "NOT_FOUND", "{}: tenant B delete", m.name);
            }
            // Rows other entities of the sweep still point at stay (Restrict would refuse).
            if !fx_is_parent(&fx, m.name) {
                let deleted = app.ok(writer, &q, json!({ "id": id })).await;
                assert_eq!(deleted[format!("delete{}", m.name)]["id"], json!(id));
                let gone = app.ok(&app.a.admin, &get, json!({ "id": id })).await;
                assert!(
                    gone[m.singular].is_null(),
                    "{}: still there after delete",
                    m.name
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 60, "only {checked} entities were swept");
}

fn fx_is_parent(fx: &Fixtures<'_>, name: &str) -> bool {
    fx.made.contains_key(name)
}

/// The binary carries the catalog it was generated from, and it loads and agrees.
#[test]
fn the_embedded_catalog_matches_the_generated_code() {
    let catalog = gateway::catalog::embedded().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(catalog.entities.len(), metadata().entities.len());
}

/// The type names the sweep relies on exist for every creatable entity.
#[test]
fn generated_names_follow_the_convention() {
    for m in metadata().entities.iter() {
        assert!(
            m.singular.chars().next().is_some_and(|c| c.is_lowercase()),
            "{}",
            m.name
        );
        assert_ne!(m.singular, m.plural, "{}", m.name);
        assert_eq!(
            upper_first(m.singular).to_lowercase(),
            m.name.to_lowercase()
        );
    }
}
