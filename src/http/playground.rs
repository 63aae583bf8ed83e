//! The GraphiQL playground, served by the gateway itself so that it works with no network and
//! under a Content-Security-Policy that allows nothing external.
//!
//! `tools/graphiql/` bundles GraphiQL (pinned in its `package-lock.json`) into
//! `assets/graphiql/graphiql.js` and `graphiql.css`; both are committed and embedded here. The
//! page (`GET /graphql` from a browser) is a few lines of HTML with no inline script: it links
//! the assets under `/graphql/assets/` by names carrying their content hash, served with
//! `Cache-Control: immutable` and an `ETag`, and configures GraphiQL through data attributes.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The route of the assets, below `/graphql` so that a proxy forwarding `/graphql` forwards
/// them too.
pub(super) const ASSETS_ROUTE: &str = "/graphql/assets/{name}";

/// A file of the bundle, embedded in the binary.
struct Asset {
    /// The name it is served under: `graphiql.<16 hex digits of its sha256>.js`, so that a new
    /// build gets a new URL and a cached copy never goes stale.
    name: String,
    content_type: &'static str,
    bytes: &'static [u8],
    /// The whole sha256, quoted as an entity tag.
    etag: String,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = gateway_catalog::sha256_hex(bytes);
        Asset {
            name: format!("{stem}.{}.{ext}", &digest[..16]),
            content_type,
            bytes,
            etag: format!("\"{digest}\""),
        }
    }
}

/// `[script, stylesheet]`.
static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        Asset::new(
            "graphiql",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/graphiql/graphiql.js"),
        ),
        Asset::new(
            "graphiql",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("../../assets/graphiql/graphiql.css"),
        ),
    ]
});

/// The page for `GET /graphql` from a browser. Its URLs are relative (`graphql/...` from
/// `/graphql`), so that it also works behind a proxy serving the gateway under a prefix.
pub(super) fn page(headers: &HeaderMap) -> Response {
    let [script, stylesheet] = &*ASSETS;
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let html = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gateway GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="graphql/assets/{css}">
<script src="graphql/assets/{js}" defer></script>
</head>
<body>
<div id="graphiql" data-endpoint="graphql" data-style-nonce="{nonce}"><noscript>GraphiQL needs JavaScript.</noscript></div>
</body>
</html>
"#,
        css = stylesheet.name,
        js = script.name,
    );
    let mut res = html.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        content_security_policy(headers, &nonce),
    );
    // The page is small and names the current assets: always revalidated.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Nothing external: scripts, styles, fonts and requests from the gateway's origin only (fonts
/// and icons are `data:` URLs inside the stylesheet); no inline script at all. The one inline
/// style GraphiQL needs, the `<style>` element its dialogs insert (react-remove-scroll), carries
/// `nonce`, fresh for every page. Subscriptions connect to the same host over `ws:` or `wss:`,
/// named explicitly for browsers whose `'self'` does not cover WebSockets.
fn content_security_policy(headers: &HeaderMap, nonce: &str) -> HeaderValue {
    let mut connect = String::from("'self'");
    if let Some(host) = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| is_plain_host(h))
    {
        connect.push_str(&format!(" ws://{host} wss://{host}"));
    }
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; \
         img-src 'self' data:; font-src 'self' data:; connect-src {connect}; \
         object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy).unwrap_or_else(|_| {
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'none'; \
             frame-ancestors 'none'",
        )
    })
}

/// A `Host` that can be written into the policy as is: a name or address with an optional
/// port, nothing that could end a source expression or a directive.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// `GET /graphql/assets/{name}`: an embedded asset by its hashed name, cached for a year;
/// `304` when the client's copy is current.
pub(super) async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let current = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == asset.etag || tag == "*");
    let mut res = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut res = Response::new(Body::from(asset.bytes));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        res
    };
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(etag) = HeaderValue::from_str(&asset.etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The assets' headers name the sha256 of the inputs they were built from
    /// (`tools/graphiql/build.mjs`); a changed lockfile, entry or build script without a
    /// rebuild fails here, with no npm needed.
    #[test]
    fn assets_were_built_from_the_committed_inputs() {
        let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/graphiql");
        let mut expected_inputs = vec!["package-lock.json".to_string(), "build.mjs".to_string()];
        let mut src: Vec<String> = std::fs::read_dir(tools.join("src"))
            .expect("tools/graphiql/src")
            .map(|e| format!("src/{}", e.expect("entry").file_name().to_string_lossy()))
            .collect();
        src.sort();
        expected_inputs.extend(src);
        let mut hash = Sha256::new();
        for f in &expected_inputs {
            let bytes = std::fs::read(tools.join(f)).expect("input");
            hash.update(format!("{f}\n{}\n", bytes.len()));
            hash.update(&bytes);
        }
        let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let expected = format!(
            "/* GENERATED by tools/graphiql (npm run build); do not edit. inputs sha256:{digest} ({}) */",
            expected_inputs.join(" ")
        );
        for asset in ASSETS.iter() {
            let first = asset.bytes.split(|b| *b == b'\n').next().unwrap_or(b"");
            assert_eq!(
                String::from_utf8_lossy(first),
                expected,
                "assets/graphiql/{} is stale: run `npm ci && npm run build` in tools/graphiql",
                asset.name
            );
        }
    }

    #[test]
    fn hosts_that_could_inject_into_the_policy_are_left_out() {
        assert!(is_plain_host("127.0.0.1:8080"));
        assert!(is_plain_host("[::1]:8080"));
        assert!(is_plain_host("gateway.example"));
        for bad in ["", "a b", "a;b", "a,b", "a'b", "evil.example; script-src *"] {
            assert!(!is_plain_host(bad), "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("x; script-src *"));
        let csp = content_security_policy(&headers, "n");
        assert!(!csp.to_str().expect("ascii").contains("script-src *"));
    }
}
