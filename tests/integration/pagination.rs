//! Keyset pagination: every row exactly once, forwards and backwards, under orders with ties
//! and nulls, compared with the order computed here by brute force.

use serde_json::{json, Value as Json};

use crate::harness::TestApp;

/// 23 tags; colors repeat (ties) and some are null.
async fn tags(app: &TestApp) -> Vec<(String, String, Option<String>)> {
    let inputs: Vec<Json> = (0..23)
        .map(|i| {
            let color = if i % 5 == 0 {
                Json::Null
            } else {
                json!(format!("c{}", i % 3))
            };
            json!({ "name": format!("tag {i:02}"), "slug": format!("tag-{i:02}"), "color": color })
        })
        .collect();
    let data = app
        .ok(
            &app.a.admin,
            "mutation($i: [TagCreateInput!]!) { createTags(inputs: $i) { id name color } }",
            json!({ "i": inputs }),
        )
        .await;
    data["createTags"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_string(),
                r["name"].as_str().unwrap_or("").to_string(),
                r["color"].as_str().map(str::to_string),
            )
        })
        .collect()
}

const PAGE: &str = "query($o: [TagOrderBy!], $f: Int, $a: String, $l: Int, $b: String) {
  tags(orderBy: $o, first: $f, after: $a, last: $l, before: $b) {
    totalCount
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}";

fn ids(page: &Json) -> Vec<String> {
    page["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Walks all pages forwards, then backwards, and checks both against `expected`.
async fn walk(app: &TestApp, order: Json, expected: &[String]) {
    let mut seen = Vec::new();
    let mut after = Json::Null;
    loop {
        let d = app
            .ok(
                &app.a.admin,
                PAGE,
                json!({ "o": order, "f": 5, "a": after }),
            )
            .await;
        let page = &d["tags"];
        assert_eq!(page["totalCount"], json!(expected.len()));
        seen.extend(ids(page));
        if page["pageInfo"]["hasNextPage"] != json!(true) {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
        assert!(seen.len() <= expected.len(), "pagination does not end");
    }
    assert_eq!(seen, expected, "forward pages for {order}");

    let mut back: Vec<String> = Vec::new();
    let mut before = Json::Null;
    loop {
        let d = app
            .ok(
                &app.a.admin,
                PAGE,
                json!({ "o": order, "l": 4, "b": before }),
            )
            .await;
        let page = &d["tags"];
        let mut chunk = ids(page);
        chunk.extend(back);
        back = chunk;
        if page["pageInfo"]["hasPreviousPage"] != json!(true) {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
        assert!(
            back.len() <= expected.len(),
            "backward pagination does not end"
        );
    }
    assert_eq!(back, expected, "backward pages for {order}");
}

#[tokio::test]
async fn keyset_pages_cover_every_row_once_in_both_directions() {
    let app = TestApp::new().await;
    let rows = tags(&app).await;

    // Default order: id ascending (ids are time-ordered UUIDv7).
    let mut by_id: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    by_id.sort();
    walk(&app, json!([]), &by_id).await;

    // Name descending: unique keys.
    let mut by_name = rows.clone();
    by_name.sort_by(|a, b| b.1.cmp(&a.1));
    walk(
        &app,
        json!([{ "name": "DESC" }]),
        &by_name.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
    )
    .await;

    // Color ascending with ties and nulls last, then id.
    let mut by_color = rows.clone();
    by_color.sort_by(|a, b| match (&a.2, &b.2) {
        (Some(x), Some(y)) => x.cmp(y).then(a.0.cmp(&b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(&b.0),
    });
    walk(
        &app,
        json!([{ "color": "ASC" }]),
        &by_color.iter().map(|r| r.0.clone()).collect::<Vec<_>>(),
    )
    .await;

    // Color descending (nulls first), then name descending.
    let mut by_color_desc = rows.clone();
    by_color_desc.sort_by(|a, b| match (&a.2, &b.2) {
        (Some(x), Some(y)) => y.cmp(x).then(b.1.cmp(&a.1)),
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (None, None) => b.1.cmp(&a.1),
    });
    walk(
        &app,
        json!([{ "color": "DESC" }, { "name": "DESC" }]),
        &by_color_desc
            .iter()
            .map(|r| r.0.clone())
            .collect::<Vec<_>>(),
    )
    .await;
}

#[tokio::test]
async fn page_arguments_are_checked() {
    let app = TestApp::new().await;
    tags(&app).await;
    let d = app
        .ok(
            &app.a.admin,
            PAGE,
            json!({ "o": [{ "name": "ASC" }], "f": 2 }),
        )
        .await;
    let cursor = d["tags"]["pageInfo"]["endCursor"].clone();
    // A cursor made for another order is refused.
    let (code, err) = app
        .err(
            &app.a.admin,
            PAGE,
            json!({ "o": [{ "color": "ASC" }], "f": 2, "a": cursor }),
        )
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    assert_eq!(err["extensions"]["field"], json!("after"));
    for vars in [
        json!({ "a": "garbage" }),
        json!({ "f": -1 }),
        json!({ "f": 100000 }),
        json!({ "f": 1, "l": 1 }),
        json!({ "o": [{ "name": "ASC", "color": "ASC" }] }),
    ] {
        let (code, _) = app.err(&app.a.admin, PAGE, vars.clone()).await;
        assert_eq!(code, "BAD_USER_INPUT", "{vars}");
    }
    // Without first/last the configured default page size applies.
    let d = app.ok(&app.a.admin, PAGE, json!({})).await;
    assert_eq!(ids(&d["tags"]).len(), 23);
}
