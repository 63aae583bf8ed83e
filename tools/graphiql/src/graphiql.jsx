// The gateway's GraphiQL page: the entry that `npm run build` bundles into
// assets/graphiql/graphiql.js and graphiql.css, which the gateway embeds and serves under
// /graphql/assets/. The page (src/http/playground.rs) has no inline script: it is configured by
// the data attributes of its #graphiql element: `data-endpoint`, the GraphQL URL relative to
// the page, and `data-style-nonce`, the nonce its Content-Security-Policy allows for the
// `<style>` elements that GraphiQL's dialogs insert (react-remove-scroll, through get-nonce).
import { StrictMode, useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { explorerPlugin } from '@graphiql/plugin-explorer';
import { setNonce } from 'get-nonce';
import 'graphiql/style.css';
import '@graphiql/plugin-explorer/style.css';
import './page.css';

const HINT =
  'The gateway answers signed-in requests only. Paste the header that `gateway serve` printed, ' +
  '{"Authorization": "Bearer ..."}, into the Headers tab below: the schema loads as soon as ' +
  'it is there.';

const DEFAULT_QUERY = `# The gateway's own GraphiQL: nothing loads from elsewhere.
#
# 1. Paste the header that \`gateway serve\` printed
#    into the Headers tab below:
#      {"Authorization": "Bearer ..."}
#    The schema, the docs and the explorer load
#    as soon as it is there.
# 2. Run with the run button or Ctrl+Enter.
#    Subscriptions run over a WebSocket on the same
#    URL (graphql-transport-ws), with the same header.

{
  me {
    id
    email
    role
  }
}
`;

/** The `Authorization` value of the headers editor's JSON, or "" when there is none. */
function authorizationOf(headers) {
  if (!headers || typeof headers !== 'object') return '';
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'authorization' && typeof value === 'string') {
      const v = value.trim();
      return /^bearer\s+\S/i.test(v) ? v : '';
    }
  }
  return '';
}

function parseHeaders(text) {
  try {
    return JSON.parse(text || '{}');
  } catch {
    return null;
  }
}

/**
 * GraphiQL's fetcher over HTTP and graphql-ws, except that introspection without a token is
 * answered here with a hint: the gateway would refuse it with 401.
 */
function makeFetcher(url, subscriptionUrl) {
  const fetcher = createGraphiQLFetcher({ url, subscriptionUrl });
  return (params, opts) => {
    if (params.operationName === 'IntrospectionQuery' && !authorizationOf(opts && opts.headers)) {
      return Promise.resolve({ errors: [{ message: HINT }] });
    }
    return fetcher(params, opts);
  };
}

function Playground({ url, subscriptionUrl }) {
  // A new fetcher makes GraphiQL introspect again: one per token pasted.
  const [authorization, setAuthorization] = useState('');
  const fetcher = useMemo(
    () => makeFetcher(url, subscriptionUrl),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [url, subscriptionUrl, authorization],
  );
  // One array for the page's life: GraphiQL resets the visible plugin when it gets a new one.
  const plugins = useMemo(() => [explorerPlugin()], []);
  const timer = useRef(0);
  useEffect(() => () => clearTimeout(timer.current), []);
  const onEditHeaders = useCallback((text) => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => {
      const headers = parseHeaders(text);
      if (headers) setAuthorization(authorizationOf(headers));
    }, 300);
  }, []);
  return (
    <GraphiQL
      fetcher={fetcher}
      plugins={plugins}
      defaultQuery={DEFAULT_QUERY}
      isHeadersEditorEnabled
      defaultEditorToolsVisibility="headers"
      onEditHeaders={onEditHeaders}
    />
  );
}

const root = document.getElementById('graphiql');
if (root.dataset.styleNonce) setNonce(root.dataset.styleNonce);
const url = new URL(root.dataset.endpoint || '/graphql', window.location.href);
const subscriptionUrl = new URL(url);
subscriptionUrl.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
createRoot(root).render(
  <StrictMode>
    <Playground url={url.href} subscriptionUrl={subscriptionUrl.href} />
  </StrictMode>,
);
