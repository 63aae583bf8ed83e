//! Aggregates and groups against brute force: every figure of `xsAggregate`, `xsGroups` and
//! `relationAggregate` is compared with the same figure computed here from the rows the same
//! caller lists, for two tenants and both roles; and a `self`-only entity aggregates only
//! the caller's rows.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, FixedOffset, TimeZone, Timelike, Utc};
use serde_json::{json, Value as Json};

use crate::harness::TestApp;

const FUNCS: [(&str, &str); 5] = [
    ("sum", "Sum"),
    ("avg", "Avg"),
    ("min", "Min"),
    ("max", "Max"),
    ("countDistinct", "CountDistinct"),
];

/// Courses, modules and lessons of one tenant; `salt` makes tenants' data differ.
async fn lms(app: &TestApp, token: &str, salt: i64) -> Vec<String> {
    let course = app
        .ok(
            token,
            "mutation($s: String!) { createCourse(input: {title: $s, slug: $s, status: PUBLISHED, selfEnrollment: true, price: \"10.50\"}) { id } }",
            json!({ "s": format!("course{salt}") }),
        )
        .await["createCourse"]["id"]
        .clone();
    let mut modules = Vec::new();
    for m in 0..3 {
        let id = app
            .ok(
                token,
                "mutation($c: ID!, $t: String!, $o: Int!) { createCourseModule(input: {courseId: $c, title: $t, sortOrder: $o, isVisible: true}) { id } }",
                json!({ "c": course, "t": format!("module{m}"), "o": m }),
            )
            .await["createCourseModule"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        modules.push(id);
    }
    let kinds = ["TEXT", "VIDEO", "AUDIO", "VIDEO", "TEXT", "TEXT"];
    // Due dates near month ends, so that a time zone moves some into the next month.
    let due = [
        Some("2026-01-31T20:00:00Z"),
        Some("2026-01-15T08:00:00Z"),
        None,
        Some("2026-02-28T19:00:00Z"),
        Some("2026-03-01T01:00:00Z"),
        Some("2026-01-31T17:00:00Z"),
    ];
    let mut inputs = Vec::new();
    // The last module has no lessons.
    for i in 0..(11 + salt) {
        let k = i as usize;
        let duration = if i % 4 == 3 {
            Json::Null
        } else {
            json!(5 + (i * 7 + salt) % 23)
        };
        let score = if i % 3 == 2 {
            Json::Null
        } else {
            json!(format!("{}.{}", 10 + (i * 13 + salt) % 17, (i * 3) % 10))
        };
        inputs.push(json!({
            "moduleId": modules[k % 2],
            "title": format!("lesson{:02}x{salt}", (i * 5) % 13),
            "contentType": kinds[k % kinds.len()],
            "sortOrder": (i * 3 + salt) % 5,
            "isPreview": i % 3 == 0,
            "isVisible": true,
            "durationMinutes": duration,
            "maxScore": score,
            "dueAt": due[(k + salt as usize) % due.len()],
        }));
    }
    app.ok(
        token,
        "mutation($i: [LessonCreateInput!]!) { createLessons(inputs: $i) { id } }",
        json!({ "i": inputs }),
    )
    .await;
    modules
}

/// The fields of `type_name` (introspected as an admin).
async fn fields_of(app: &TestApp, type_name: &str) -> Vec<String> {
    let d = app
        .ok(
            &app.a.admin,
            "query($n: String!) { __type(name: $n) { fields { name } } }",
            json!({ "n": type_name }),
        )
        .await;
    d["__type"]["fields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect()
}

/// Every function's fields of an entity: (function, its fields).
async fn measures(app: &TestApp, entity: &str) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    for (func, suffix) in FUNCS {
        let fields = fields_of(app, &format!("{entity}{suffix}")).await;
        if !fields.is_empty() {
            out.push((func, fields));
        }
    }
    out
}

fn selection(measures: &[(&str, Vec<String>)]) -> String {
    let mut s = String::from("count");
    for (func, fields) in measures {
        s.push_str(&format!(" {func} {{ {} }}", fields.join(" ")));
    }
    s
}

fn number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn instant(v: &Json) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// One figure computed from the rows' values of a field.
fn brute(func: &str, values: &[&Json]) -> Json {
    let present: Vec<&Json> = values.iter().copied().filter(|v| !v.is_null()).collect();
    if func == "countDistinct" {
        let distinct: BTreeSet<String> = present.iter().map(|v| v.to_string()).collect();
        return json!(distinct.len());
    }
    if present.is_empty() {
        return Json::Null;
    }
    let numbers: Option<Vec<f64>> = present.iter().map(|v| number(v)).collect();
    match (func, numbers) {
        ("sum", Some(n)) => json!(n.iter().sum::<f64>()),
        ("avg", Some(n)) => json!(n.iter().sum::<f64>() / n.len() as f64),
        ("min" | "max", Some(n)) => {
            let pick = if func == "min" { f64::min } else { f64::max };
            json!(n.iter().copied().fold(n[0], pick))
        }
        ("min" | "max", None) => {
            if let Some(mut d) = present
                .iter()
                .map(|v| instant(v))
                .collect::<Option<Vec<_>>>()
            {
                d.sort();
                let at = if func == "min" { d[0] } else { d[d.len() - 1] };
                return json!(at.to_rfc3339());
            }
            let mut s: Vec<&str> = present.iter().filter_map(|v| v.as_str()).collect();
            s.sort();
            json!(if func == "min" { s[0] } else { s[s.len() - 1] })
        }
        _ => Json::Null,
    }
}

/// Whether an answered figure equals the brute-force one (numbers within rounding,
/// instants as instants).
fn same(got: &Json, want: &Json) -> bool {
    if got.is_null() || want.is_null() {
        return got.is_null() && want.is_null();
    }
    if let (Some(a), Some(b)) = (instant(got), instant(want)) {
        return a == b;
    }
    match (number(got), number(want)) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        _ => got == want,
    }
}

/// Compares every figure of `agg` with the rows'.
fn check_figures(agg: &Json, rows: &[Json], measures: &[(&str, Vec<String>)], what: &str) {
    assert_eq!(agg["count"], json!(rows.len()), "count of {what}");
    for (func, fields) in measures {
        for f in fields {
            let values: Vec<&Json> = rows.iter().map(|r| &r[f.as_str()]).collect();
            let want = brute(func, &values);
            let got = &agg[*func][f.as_str()];
            assert!(
                same(got, &want),
                "{func}.{f} of {what}: answered {got}, the rows give {want}"
            );
        }
    }
}

/// Every row the caller may list, with every measured field.
async fn all_rows(
    app: &TestApp,
    token: &str,
    list: &str,
    fields: &[String],
    filter: &Json,
) -> Vec<Json> {
    let q = format!(
        "query($w: {}Where) {{ {list}(first: 500, where: $w) {{ nodes {{ id {} }} }} }}",
        entity_of(list),
        fields.join(" ")
    );
    let d = app.ok(token, &q, json!({ "w": filter })).await;
    d[list]["nodes"].as_array().cloned().unwrap_or_default()
}

fn entity_of(list: &str) -> &'static str {
    match list {
        "lessons" => "Lesson",
        "courseProgresses" => "CourseProgress",
        "wallets" => "Wallet",
        _ => "",
    }
}

fn union(measures: &[(&str, Vec<String>)]) -> Vec<String> {
    let set: BTreeSet<String> = measures.iter().flat_map(|(_, f)| f.clone()).collect();
    set.into_iter().collect()
}

#[tokio::test]
async fn every_aggregate_matches_the_rows_for_both_tenants_and_roles() {
    let app = TestApp::new().await;
    lms(&app, &app.a.admin, 0).await;
    lms(&app, &app.b.admin, 3).await;
    let lesson = measures(&app, "Lesson").await;
    assert!(
        lesson
            .iter()
            .any(|(f, fields)| *f == "sum" && fields.contains(&"maxScore".to_string())),
        "Lesson sums its decimals: {lesson:?}"
    );
    let fields = union(&lesson);
    let filters = [
        json!(null),
        json!({ "contentType": { "in": ["TEXT", "AUDIO"] } }),
        json!({ "durationMinutes": { "gt": 10 }, "isPreview": { "equals": false } }),
        json!({ "title": { "equals": "nothing" } }),
    ];
    let q = format!(
        "query($w: LessonWhere) {{ lessonsAggregate(where: $w) {{ {} }} }}",
        selection(&lesson)
    );
    let mut counts = Vec::new();
    for (tenant, token) in [
        ("a", &app.a.admin),
        ("a", &app.a.user),
        ("b", &app.b.admin),
        ("b", &app.b.user),
    ] {
        for w in &filters {
            let rows = all_rows(&app, token, "lessons", &fields, w).await;
            let agg = app.ok(token, &q, json!({ "w": w })).await;
            check_figures(
                &agg["lessonsAggregate"],
                &rows,
                &lesson,
                &format!("lessons of {tenant} where {w}"),
            );
            if w.is_null() {
                counts.push(rows.len());
            }
        }
    }
    // Each tenant counts its own rows only.
    assert_eq!(counts, vec![11, 11, 14, 14]);
}

#[tokio::test]
async fn a_self_only_entity_aggregates_the_callers_rows() {
    let app = TestApp::new().await;
    let (_, other) = app.new_user("walleter").await;
    for (token, currencies) in [
        (&app.a.user, vec!["EUR", "USD"]),
        (&other, vec!["EUR", "GBP", "JPY"]),
        (&app.a.admin, vec!["CHF"]),
        (&app.b.user, vec!["EUR", "USD", "SEK", "NOK"]),
    ] {
        for c in currencies {
            app.ok(
                token,
                "mutation($c: String!) { createWallet(input: {currency: $c}) { id } }",
                json!({ "c": c }),
            )
            .await;
        }
    }
    let q = "{ walletsAggregate { count countDistinct { currency userId } min { currency } max { currency } } }";
    for (token, count, distinct, users) in [
        (&app.a.user, 2, 2, 1),
        (&other, 3, 3, 1),
        (&app.a.admin, 6, 5, 3),
        (&app.b.user, 4, 4, 1),
        (&app.b.admin, 4, 4, 1),
    ] {
        let d = app.ok(token, q, json!({})).await;
        let a = &d["walletsAggregate"];
        assert_eq!(a["count"], json!(count), "{d}");
        assert_eq!(a["countDistinct"]["currency"], json!(distinct), "{d}");
        assert_eq!(a["countDistinct"]["userId"], json!(users), "{d}");
        let rows = all_rows(
            &app,
            token,
            "wallets",
            &["currency".to_string()],
            &json!(null),
        )
        .await;
        assert_eq!(rows.len(), count);
        let values: Vec<&Json> = rows.iter().map(|r| &r["currency"]).collect();
        assert_eq!(a["min"]["currency"], brute("min", &values));
        assert_eq!(a["max"]["currency"], brute("max", &values));
    }
    // Groups obey the same scope.
    let d = app
        .ok(
            &app.a.user,
            "{ walletsGroups(by: [CURRENCY]) { nodes { key { currency } count } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["walletsGroups"]["nodes"],
        json!([{ "key": { "currency": "EUR" }, "count": 1 }, { "key": { "currency": "USD" }, "count": 1 }])
    );
}

/// The groups of `rows` by the values `key` gives each row.
fn grouped<K: Ord + Clone>(rows: &[Json], key: impl Fn(&Json) -> K) -> BTreeMap<K, Vec<Json>> {
    let mut out: BTreeMap<K, Vec<Json>> = BTreeMap::new();
    for r in rows {
        out.entry(key(r)).or_default().push(r.clone());
    }
    out
}

/// Every page of a groups query, following `endCursor`.
async fn every_group(
    app: &TestApp,
    token: &str,
    query: &str,
    vars: Json,
    field: &str,
) -> Vec<Json> {
    let mut out = Vec::new();
    let mut after = Json::Null;
    loop {
        let mut v = vars.clone();
        v["after"] = after.clone();
        let d = app.ok(token, query, v).await;
        let page = &d[field];
        out.extend(page["nodes"].as_array().cloned().unwrap_or_default());
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            return out;
        }
        after = page["pageInfo"]["endCursor"].clone();
        assert!(out.len() < 1000, "group pages do not end");
    }
}

/// The start of `at`'s month in a zone `offset` hours east of UTC, as an instant.
fn month_start(at: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
    let local = at.with_timezone(&offset);
    offset
        .with_ymd_and_hms(local.year(), local.month(), 1, 0, 0, 0)
        .single()
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or(at)
}

fn hour_start(at: DateTime<Utc>) -> DateTime<Utc> {
    at - Duration::minutes(i64::from(at.minute())) - Duration::seconds(i64::from(at.second()))
}

#[tokio::test]
async fn groups_match_the_rows_and_page_by_keyset() {
    let app = TestApp::new().await;
    lms(&app, &app.a.admin, 0).await;
    lms(&app, &app.b.admin, 5).await;
    let lesson = measures(&app, "Lesson").await;
    let fields = union(&lesson);
    let sel = selection(&lesson);
    let by_kind = format!(
        "query($after: String, $h: LessonHaving) {{ lessonsGroups(by: [CONTENT_TYPE, IS_PREVIEW], having: $h, orderBy: [{{count: DESC}}], first: 2, after: $after) {{ nodes {{ key {{ contentType isPreview }} {sel} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    let by_month = format!(
        "query($after: String, $z: String) {{ lessonsGroups(by: [DUE_AT], dateBucket: MONTH, timeZone: $z, first: 2, after: $after) {{ nodes {{ key {{ dueAt }} {sel} }} pageInfo {{ hasNextPage endCursor }} }} }}"
    );
    for token in [&app.a.admin, &app.a.user, &app.b.admin, &app.b.user] {
        let rows = all_rows(
            &app,
            token,
            "lessons",
            &{
                let mut f = fields.clone();
                f.extend(["contentType".into(), "isPreview".into(), "dueAt".into()]);
                f
            },
            &json!(null),
        )
        .await;

        // By kind and preview, most rows first, two groups a page.
        let want = grouped(&rows, |r| {
            (r["contentType"].to_string(), r["isPreview"].to_string())
        });
        let got = every_group(&app, token, &by_kind, json!({}), "lessonsGroups").await;
        assert_eq!(got.len(), want.len(), "groups by kind: {got:?}");
        let mut last = usize::MAX;
        for g in &got {
            let k = (
                g["key"]["contentType"].to_string(),
                g["key"]["isPreview"].to_string(),
            );
            let members = want
                .get(&k)
                .unwrap_or_else(|| panic!("a group the rows do not have: {g}"));
            check_figures(g, members, &lesson, &format!("group {k:?}"));
            let n = g["count"].as_u64().unwrap_or(0) as usize;
            assert!(n <= last, "groups sorted by count, descending");
            last = n;
        }
        // having: groups of more than one row only.
        let got = every_group(
            &app,
            token,
            &by_kind,
            json!({ "h": { "count": { "gt": 1 } } }),
            "lessonsGroups",
        )
        .await;
        assert_eq!(got.len(), want.values().filter(|m| m.len() > 1).count());
        let got = every_group(
            &app,
            token,
            &by_kind,
            json!({ "h": { "OR": [{ "sum": { "durationMinutes": { "gte": 30 } } }, { "max": { "maxScore": { "lt": "12" } } }] } }),
            "lessonsGroups",
        )
        .await;
        let expected = want
            .values()
            .filter(|m| {
                let d: Vec<&Json> = m.iter().map(|r| &r["durationMinutes"]).collect();
                let s: Vec<&Json> = m.iter().map(|r| &r["maxScore"]).collect();
                number(&brute("sum", &d)).is_some_and(|x| x >= 30.0)
                    || number(&brute("max", &s)).is_some_and(|x| x < 12.0)
            })
            .count();
        assert_eq!(got.len(), expected, "groups having a sum or a max");

        // By month of the due date, in UTC and in a zone 5:30 east of it.
        for (zone, offset) in [("UTC", 0), ("Asia/Kolkata", 5 * 3600 + 1800)] {
            let offset = FixedOffset::east_opt(offset).expect("offset");
            let want = grouped(&rows, |r| {
                instant(&r["dueAt"]).map(|d| month_start(d, offset))
            });
            let got = every_group(
                &app,
                token,
                &by_month,
                json!({ "z": zone }),
                "lessonsGroups",
            )
            .await;
            assert_eq!(got.len(), want.len(), "months in {zone}: {got:?}");
            for g in &got {
                let k = instant(&g["key"]["dueAt"]);
                let members = want
                    .get(&k)
                    .unwrap_or_else(|| panic!("a month the rows do not have in {zone}: {g}"));
                check_figures(g, members, &lesson, &format!("month {k:?} in {zone}"));
            }
        }
    }
    // The zone matters: 2026-01-31T20:00Z is February in Kolkata.
    let d = app
        .ok(
            &app.a.admin,
            "{ lessonsGroups(by: [DUE_AT], dateBucket: HOUR, where: {dueAt: {isNull: false}}) { nodes { key { dueAt } count } } }",
            json!({}),
        )
        .await;
    for g in d["lessonsGroups"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let at = instant(&g["key"]["dueAt"]).expect("an hour");
        assert_eq!(at, hour_start(at));
    }
}

#[tokio::test]
async fn groups_by_a_reference_load_the_related_row() {
    let app = TestApp::new().await;
    let modules = lms(&app, &app.a.admin, 0).await;
    let d = app
        .ok(
            &app.a.user,
            "{ lessonsGroups(by: [MODULE_ID], orderBy: [{moduleId: ASC}]) { nodes { key { moduleId module { id title } } count } } }",
            json!({}),
        )
        .await;
    let nodes = d["lessonsGroups"]["nodes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(nodes.len(), 2, "two modules have lessons: {d}");
    for g in &nodes {
        assert_eq!(g["key"]["module"]["id"], g["key"]["moduleId"]);
        assert!(modules.contains(
            &g["key"]["moduleId"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        ));
        assert!(g["key"]["module"]["title"]
            .as_str()
            .is_some_and(|t| t.starts_with("module")));
    }
    let total: u64 = nodes.iter().filter_map(|g| g["count"].as_u64()).sum();
    assert_eq!(total, 11);
}

#[tokio::test]
async fn relation_aggregates_match_the_rows_and_cost_one_statement_per_level() {
    // Statements counted as served (verifying plans would read plain queries twice).
    let app = TestApp::with_limits(gateway::config::Limits::default()).await;
    lms(&app, &app.a.admin, 0).await;
    lms(&app, &app.b.admin, 2).await;
    let lesson = measures(&app, "Lesson").await;
    let fields = union(&lesson);
    let q = format!(
        "query($w: LessonWhere) {{ courseModules(first: 5) {{ nodes {{ id lessonsAggregate(where: $w) {{ {} }} lessons(first: 20, where: $w) {{ nodes {{ {} }} }} }} }} }}",
        selection(&lesson),
        fields.join(" ")
    );
    for token in [&app.a.admin, &app.a.user, &app.b.admin, &app.b.user] {
        for w in [json!(null), json!({ "contentType": { "equals": "TEXT" } })] {
            let d = app.ok(token, &q, json!({ "w": w })).await;
            let modules = d["courseModules"]["nodes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(modules.len(), 3);
            for m in &modules {
                let rows = m["lessons"]["nodes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                check_figures(
                    &m["lessonsAggregate"],
                    &rows,
                    &lesson,
                    &format!("lessons of module {}", m["id"]),
                );
            }
        }
    }
    // However many parents, the figures of a level are one statement.
    let only = "{ courseModules(first: 50) { nodes { id lessonsAggregate { count sum { durationMinutes } } } } }";
    app.ok(&app.a.admin, only, json!({})).await;
    app.db.settled().await;
    let before = app.db.statements();
    app.ok(&app.a.admin, only, json!({})).await;
    app.db.settled().await;
    let with_figures = app.db.statements() - before;
    let plain = "{ courseModules(first: 50) { nodes { id } } }";
    app.ok(&app.a.admin, plain, json!({})).await;
    app.db.settled().await;
    let before = app.db.statements();
    app.ok(&app.a.admin, plain, json!({})).await;
    app.db.settled().await;
    assert_eq!(
        with_figures,
        app.db.statements() - before + 1,
        "one statement for the figures of 3 modules"
    );
}

#[tokio::test]
async fn bad_group_arguments_are_refused_with_a_code() {
    let app = TestApp::new().await;
    lms(&app, &app.a.admin, 0).await;
    for (query, code) in [
        ("{ lessonsGroups(by: []) { nodes { count } } }", "BAD_USER_INPUT"),
        ("{ lessonsGroups(by: [DUE_AT], timeZone: \"Mars/Olympus\") { nodes { count } } }", "BAD_USER_INPUT"),
        ("{ lessonsGroups(by: [DUE_AT], timeZone: \"UTC'; DROP TABLE lessons; --\") { nodes { count } } }", "BAD_USER_INPUT"),
        ("{ lessonsGroups(by: [CONTENT_TYPE], orderBy: [{isPreview: ASC}]) { nodes { count } } }", "BAD_USER_INPUT"),
        ("{ lessonsGroups(by: [CONTENT_TYPE], orderBy: [{count: ASC, isPreview: ASC}]) { nodes { count } } }", "BAD_USER_INPUT"),
        ("{ lessonsGroups(by: [CONTENT_TYPE], first: 100000) { nodes { count } } }", "BAD_USER_INPUT"),
        ("{ lessonsGroups(by: [CONTENT_TYPE], after: \"bm9wZQ\") { nodes { count } } }", "BAD_USER_INPUT"),
    ] {
        let (got, err) = app.err(&app.a.admin, query, json!({})).await;
        assert_eq!(got, code, "{query}: {err}");
        assert!(!err.to_string().contains("SELECT"), "no SQL in errors: {err}");
    }
    // An aggregate reads every row it counts: it is charged in the complexity budget.
    let (code, _) = app
        .err(
            &app.a.admin,
            "{ courseModules(first: 500) { nodes { lessonsAggregate { count sum { durationMinutes } min { title } max { title } countDistinct { title contentType moduleId } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code, "LIMIT_EXCEEDED");
    // A cursor of one grouping is no cursor of another.
    let d = app
        .ok(
            &app.a.admin,
            "{ lessonsGroups(by: [CONTENT_TYPE], first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = d["lessonsGroups"]["pageInfo"]["endCursor"].clone();
    let (code, _) = app
        .err(
            &app.a.admin,
            "query($a: String) { lessonsGroups(by: [IS_PREVIEW], first: 1, after: $a) { nodes { count } } }",
            json!({ "a": cursor }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
}

#[tokio::test]
async fn groups_with_null_keys_page_one_at_a_time_in_either_direction() {
    let app = TestApp::new().await;
    lms(&app, &app.a.admin, 0).await;
    let rows = all_rows(
        &app,
        &app.a.user,
        "lessons",
        &["durationMinutes".to_string(), "title".to_string()],
        &json!(null),
    )
    .await;
    let want = grouped(&rows, |r| r["durationMinutes"].as_i64());
    assert!(want.contains_key(&None), "some lessons have no duration");
    let q = "query($after: String, $d: SortOrder!, $h: LessonHaving) { lessonsGroups(by: [DURATION_MINUTES], orderBy: [{durationMinutes: $d}], having: $h, first: 1, after: $after) { nodes { key { durationMinutes } count min { title } } pageInfo { hasNextPage endCursor } } }";
    for (dir, nulls_first) in [("ASC", false), ("DESC", true)] {
        let got = every_group(&app, &app.a.user, q, json!({ "d": dir }), "lessonsGroups").await;
        assert_eq!(got.len(), want.len(), "every group once, {dir}");
        let keys: Vec<Option<i64>> = got
            .iter()
            .map(|g| g["key"]["durationMinutes"].as_i64())
            .collect();
        let mut expected: Vec<Option<i64>> = want.keys().copied().filter(Option::is_some).collect();
        if dir == "DESC" {
            expected.reverse();
        }
        // Nulls sort as the largest value, as in lists: last ascending, first descending.
        if nulls_first {
            expected.insert(0, None);
        } else {
            expected.push(None);
        }
        assert_eq!(keys, expected, "{dir}");
        for g in &got {
            let members = &want[&g["key"]["durationMinutes"].as_i64()];
            assert_eq!(g["count"], json!(members.len()));
            let titles: Vec<&Json> = members.iter().map(|r| &r["title"]).collect();
            assert_eq!(g["min"]["title"], brute("min", &titles));
        }
        // NOT in having.
        let got = every_group(
            &app,
            &app.a.user,
            q,
            json!({ "d": dir, "h": { "NOT": { "count": { "equals": 1 } } } }),
            "lessonsGroups",
        )
        .await;
        assert_eq!(got.len(), want.values().filter(|m| m.len() != 1).count());
    }
}
