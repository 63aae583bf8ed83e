// Subscribes through three real clients (graphql-ws, Apollo Client's GraphQLWsLink, and the
// legacy subscriptions-transport-ws), makes a mutation over HTTP for each, and prints what
// each client received as JSON.
// usage: node subscription-clients.mjs <http url> <ws url> <bearer token>
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client/core/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { SubscriptionClient } from 'subscriptions-transport-ws';

const [httpUrl, wsUrl, token] = process.argv.slice(2);
if (!httpUrl || !wsUrl || !token) {
  console.error('usage: node subscription-clients.mjs <http url> <ws url> <token>');
  process.exit(2);
}
const authorization = `Bearer ${token}`;
/** A graphql-transport-ws client of the gateway, signed in with the token. */
function wsClient() {
  return createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: authorization },
    retryAttempts: 0,
  });
}

const SUBSCRIPTION = `subscription($w: ForumCategoryWhere) {
  forumCategoryChanged(where: $w, ops: [CREATED]) { op node { id slug } cursor }
}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function createCategory(slug) {
  const res = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({
      query: 'mutation($s: String!) { createForumCategory(input: {name: $s, slug: $s}) { id } }',
      variables: { s: slug },
    }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
}

// Resolves with the first event, or rejects after 10 s.
function firstEvent(subscribe) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no event within 10 s')), 10000);
    subscribe(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
      },
    );
  });
}

async function viaGraphqlWs() {
  const client = wsClient();
  let dispose = () => {};
  const event = firstEvent((next, error) => {
    dispose = client.subscribe(
      { query: SUBSCRIPTION, variables: { w: { slug: { startsWith: 'gws-' } } } },
      { next, error, complete: () => {} },
    );
  });
  await sleep(500);
  await createCategory('gws-1');
  const value = await event;
  dispose();
  await client.dispose();
  return value.data.forumCategoryChanged;
}

async function viaApollo() {
  const ws = wsClient();
  const client = new ApolloClient({ link: new GraphQLWsLink(ws), cache: new InMemoryCache() });
  let sub;
  const event = firstEvent((next, error) => {
    sub = client
      .subscribe({ query: gql(SUBSCRIPTION), variables: { w: { slug: { startsWith: 'apollo-' } } } })
      .subscribe({ next, error });
  });
  await sleep(500);
  await createCategory('apollo-1');
  const value = await event;
  sub.unsubscribe();
  await ws.dispose();
  return value.data.forumCategoryChanged;
}

async function viaLegacy() {
  const client = new SubscriptionClient(
    wsUrl,
    { connectionParams: { Authorization: authorization }, reconnect: false },
    WebSocket,
  );
  let sub;
  const event = firstEvent((next, error) => {
    sub = client
      .request({ query: SUBSCRIPTION, variables: { w: { slug: { startsWith: 'legacy-' } } } })
      .subscribe({ next, error });
  });
  await sleep(500);
  await createCategory('legacy-1');
  const value = await event;
  sub.unsubscribe();
  client.close();
  return value.data.forumCategoryChanged;
}

const out = {};
for (const [name, run] of [
  ['graphqlWs', viaGraphqlWs],
  ['apollo', viaApollo],
  ['legacy', viaLegacy],
]) {
  try {
    out[name] = await run();
  } catch (e) {
    out[name] = { error: String(e && e.message ? e.message : e) };
  }
}
console.log(JSON.stringify(out));
process.exit(0);
