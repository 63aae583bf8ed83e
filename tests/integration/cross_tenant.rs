//! The cross-tenant suite, generated from the catalog's metadata: tenant A creates a row of
//! every entity it can; tenant B then tries every operation on each of them (get, list, count,
//! relation filters both ways, relation fields, update, delete, bulk update and delete, and
//! A's ids as references in its own inputs) while subscribed to every entity's changes.
//! Each answer must equal the answer for an id that does not exist at all, no answer and no
//! event may contain any of A's ids, and A's rows must be unchanged afterwards.

use std::collections::BTreeSet;
use std::time::Duration;

use gateway::graphql::meta::metadata;
use gateway::graphql::meta::{EntityMeta, EntityScope};
use serde_json::{json, Value as Json};

use crate::harness::TestApp;
use crate::subscriptions::{acked, recv, send};
use crate::sweep::{can, meta, selection, update_patch, upper_first, Fixtures};

/// `response` with `id` written as `<id>`, to compare a foreign id's answer with a missing one's.
fn masked(response: &Json, id: &str) -> String {
    response.to_string().replace(id, "<id>")
}

struct Probe<'a> {
    app: &'a TestApp,
    /// Every id tenant A owns: none may ever reach tenant B.
    a_ids: BTreeSet<String>,
    probes: usize,
}

impl Probe<'_> {
    /// Runs `query` as B with `$id` = A's `foreign` id and again with an id that exists
    /// nowhere: both answers must be the same, and neither may contain any of A's ids.
    async fn same_as_missing(&mut self, what: &str, query: &str, vars: Json, foreign: &str) {
        let with = |id: &str| {
            let mut v = vars.clone();
            v["id"] = json!(id);
            v
        };
        self.compare(what, query, with, foreign).await;
    }

    /// The same with the id as field `field` of the input `$i`.
    async fn same_as_missing_in_input(
        &mut self,
        what: &str,
        query: &str,
        input: Json,
        field: &str,
        foreign: &str,
    ) {
        let with = |id: &str| {
            let mut i = input.clone();
            i[field] = json!(id);
            json!({ "i": i })
        };
        self.compare(what, query, with, foreign).await;
    }

    async fn compare(
        &mut self,
        what: &str,
        query: &str,
        vars: impl Fn(&str) -> Json,
        foreign: &str,
    ) {
        let missing = uuid::Uuid::now_v7().to_string();
        let got = self.app.gql(&self.app.b.admin, query, vars(foreign)).await;
        let baseline = self.app.gql(&self.app.b.admin, query, vars(&missing)).await;
        assert_eq!(
            masked(&got, foreign),
            masked(&baseline, &missing),
            "{what}: a foreign id is answered differently from a missing one\nquery: {query}"
        );
        self.no_a_ids(what, &got);
        self.probes += 1;
    }

    fn no_a_ids(&self, what: &str, response: &Json) {
        let text = response.to_string();
        if let Some(id) = self.a_ids.iter().find(|id| text.contains(id.as_str())) {
            panic!("{what}: tenant A's id {id} reached tenant B: {text}");
        }
    }
}

/// Whether `m`'s reference column `column` is unique on its own (a hasOne inverse).
fn one_to_one(m: &EntityMeta, column: &str) -> bool {
    m.unique_keys.iter().any(|k| k.len() == 1 && k[0] == column)
}

#[tokio::test]
async fn no_tenant_reaches_another_tenants_rows() {
    let app = TestApp::new().await;
    let addr = app.listen().await;
    let tenant_scoped: Vec<&'static EntityMeta> = metadata()
        .entities
        .iter()
        .copied()
        .filter(|m| m.scope == EntityScope::Tenant)
        .collect();

    // B subscribes to every entity's changes before A writes anything.
    let mut ws = acked(addr, &app.b.admin).await;
    for m in &tenant_scoped {
        send(
            &mut ws,
            json!({ "id": m.name, "type": "subscribe", "payload": {
                "query": format!("subscription {{ {}Changed {{ op node {{ id }} }} }}", m.singular)
            } }),
        )
        .await;
    }
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let listener = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stopped => return seen,
                m = recv(&mut ws, Duration::from_millis(100)) => {
                    if let Some(m) = m {
                        seen.push(m);
                    }
                }
            }
        }
    });

    // A: one row of every entity it can create, parents on demand.
    let mut fa = Fixtures::new(&app, &app.a.admin);
    fa.set_me(app.a.admin_id.to_string());
    let mut rows = Vec::new();
    for m in tenant_scoped.iter().copied().filter(|m| can(m.acl.create)) {
        rows.push((m, fa.row(m.name).await));
    }
    let mut a_ids: BTreeSet<String> = rows.iter().map(|(_, id)| id.clone()).collect();
    a_ids.extend([app.a.id, app.a.admin_id, app.a.user_id].map(|i| i.to_string()));
    let a_row_of = |name: &str| {
        rows.iter()
            .find(|(m, _)| m.name == name)
            .map(|(_, id)| id.clone())
    };
    let mut before = Vec::new();
    for (m, id) in &rows {
        let q = format!(
            "query($id: ID!) {{ {}(id: $id) {{ {} }} }}",
            m.singular,
            selection(m)
        );
        before.push(app.ok(&app.a.admin, &q, json!({ "id": id })).await);
    }

    let mut probe = Probe {
        app: &app,
        a_ids,
        probes: 0,
    };
    let mut fb = Fixtures::new(&app, &app.b.admin);
    fb.set_me(app.b.admin_id.to_string());
    for (m, id) in &rows {
        let (n, s, p) = (m.name, m.singular, m.plural);
        let sel = selection(m);
        let belongs: Vec<&str> = m.relations.iter().map(|r| r.name).collect();
        let related = belongs
            .iter()
            .map(|r| format!("{r} {{ id }}"))
            .collect::<Vec<_>>()
            .join(" ");
        probe
            .same_as_missing(
                &format!("{n} by id"),
                &format!("query($id: ID!) {{ {s}(id: $id) {{ {sel} {related} }} }}"),
                json!({}),
                id,
            )
            .await;
        probe
            .same_as_missing(
                &format!("{n} list and count"),
                &format!(
                    "query($id: ID!) {{ {p}(where: {{ id: {{ equals: $id }} }}) {{ totalCount nodes {{ id }} }} \
                     c: {p}(where: {{ id: {{ in: [$id] }} }}, first: 1) {{ totalCount }} }}"
                ),
                json!({}),
                id,
            )
            .await;
        if let Some((field, value)) = update_patch(m) {
            probe
                .same_as_missing(
                    &format!("update {n}"),
                    &format!(
                        "mutation($id: ID!, $i: {n}UpdateInput!) {{ update{n}(id: $id, input: $i) {{ id }} }}"
                    ),
                    json!({ "i": { field: value } }),
                    id,
                )
                .await;
            probe
                .same_as_missing(
                    &format!("bulk update {n}"),
                    &format!(
                        "mutation($id: ID!, $i: {n}UpdateInput!) {{ update{pl}(where: {{ id: {{ equals: $id }} }}, input: $i) {{ id }} }}",
                        pl = upper_first(p)
                    ),
                    json!({ "i": { field: value } }),
                    id,
                )
                .await;
        }
        probe
            .same_as_missing(
                &format!("delete {n}"),
                &format!("mutation($id: ID!) {{ delete{n}(id: $id) {{ id }} }}"),
                json!({}),
                id,
            )
            .await;
        probe
            .same_as_missing(
                &format!("bulk delete {n}"),
                &format!(
                    "mutation($id: ID!) {{ delete{pl}(where: {{ id: {{ equals: $id }} }}) {{ id }} }}",
                    pl = upper_first(p)
                ),
                json!({}),
                id,
            )
            .await;

        for r in m.relations {
            let target = meta(r.target);
            if target.scope != EntityScope::Tenant {
                continue;
            }
            let Some(parent) = a_row_of(target.name) else {
                continue;
            };
            // Child to parent: B's rows whose parent is A's.
            probe
                .same_as_missing(
                    &format!("{n} where {} is A's", r.name),
                    &format!(
                        "query($id: ID!) {{ {p}(where: {{ {}: {{ id: {{ equals: $id }} }} }}) {{ totalCount nodes {{ id }} }} }}",
                        r.name
                    ),
                    json!({}),
                    &parent,
                )
                .await;
            // Parent to children: B's parents having A's row as a child.
            let filter = if one_to_one(m, r.column) {
                format!("{{ {}: {{ id: {{ equals: $id }} }} }}", r.inverse)
            } else {
                format!(
                    "{{ {}: {{ some: {{ id: {{ equals: $id }} }} }} }}",
                    r.inverse
                )
            };
            probe
                .same_as_missing(
                    &format!("{} where {} has A's {n}", target.name, r.inverse),
                    &format!(
                        "query($id: ID!) {{ {}(where: {filter}) {{ totalCount nodes {{ id }} }} }}",
                        target.plural
                    ),
                    json!({}),
                    id,
                )
                .await;
            // A's parent as the reference of B's new row.
            let Some(col) = m.columns.iter().find(|c| c.column == r.column) else {
                continue;
            };
            if !(col.writable && can(m.acl.create)) {
                continue;
            }
            let mut input = fb.input(m).await;
            input.remove(col.field);
            probe
                .same_as_missing_in_input(
                    &format!("create {n} with A's {}", r.name),
                    &format!("mutation($i: {n}CreateInput!) {{ create{n}(input: $i) {{ id }} }}"),
                    Json::Object(input),
                    col.field,
                    &parent,
                )
                .await;
        }
    }
    assert!(probe.probes > 300, "only {} probes", probe.probes);

    // B's whole view, relations included, holds nothing of A's.
    for m in tenant_scoped.iter().filter(|m| can(m.acl.read)) {
        let related = m
            .relations
            .iter()
            .map(|r| format!("{} {{ id }}", r.name))
            .collect::<Vec<_>>()
            .join(" ");
        let all = app
            .gql(
                &app.b.admin,
                &format!(
                    "{{ {}(first: 100) {{ nodes {{ id {related} }} }} }}",
                    m.plural
                ),
                json!({}),
            )
            .await;
        probe.no_a_ids(m.name, &all);
    }

    // A's rows are as they were.
    for ((m, id), was) in rows.iter().zip(&before) {
        let q = format!(
            "query($id: ID!) {{ {}(id: $id) {{ {} }} }}",
            m.singular,
            selection(m)
        );
        let now = app.ok(&app.a.admin, &q, json!({ "id": id })).await;
        assert_eq!(&now, was, "{}: tenant A's row changed", m.name);
    }

    // B's subscriptions delivered B's own changes, and nothing of A's.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = stop.send(());
    let seen = listener.await.expect("listener");
    let events: Vec<&Json> = seen.iter().filter(|m| m["type"] == "next").collect();
    assert!(!events.is_empty(), "B's subscriptions saw nothing at all");
    for m in &seen {
        assert_ne!(m["type"], "error", "{m}");
        probe.no_a_ids("subscription", m);
    }
}
