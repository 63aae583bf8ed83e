// The test app `clients.mjs` bundles with esbuild and opens in headless Chromium: Apollo
// Client and urql (with graphcache), each with its normalised cache, relay-style pagination,
// a mutation updating the cache and a live subscription over graphql-ws, against the gateway
// that serves this page. `window.config` (set by the runner before the page's scripts) holds
// the gateway's URLs, the user's token and the seeded category; `window.results` collects
// what each step saw and `window.done` says when all is over. Any thrown error ends in
// `window.results.error` and, through console.error, fails the test.
import {
  ApolloClient,
  InMemoryCache,
  HttpLink,
  gql,
  split,
} from '@apollo/client/core';
import { relayStylePagination, getMainDefinition } from '@apollo/client/utilities';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { Client, fetchExchange, subscriptionExchange, gql as ugql } from '@urql/core';
import { cacheExchange as graphcache } from '@urql/exchange-graphcache';
import { relayPagination } from '@urql/exchange-graphcache/extras';
import { createClient as wsClient } from 'graphql-ws';

const config = window.config;
const results = (window.results = { apollo: {}, urql: {} });
const auth = `Bearer ${config.token}`;

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function log(line) {
  const li = document.createElement('li');
  li.textContent = line;
  document.getElementById('log').appendChild(li);
}

/** `fetch` counting the requests each client sends, to tell cache answers from network. */
function countingFetch(counter) {
  return (input, init) => {
    counter.requests += 1;
    return window.fetch(input, init);
  };
}

/** Resolves with the first value `subscribe` delivers, asking the runner for a notification
 * (an admin's mutation) until one arrives: the server registers a subscription a moment after
 * reading it, and a notification created before that is not delivered. */
async function liveEvent(label, subscribe) {
  let received;
  const got = new Promise((resolve, reject) => {
    received = subscribe(resolve, reject);
  });
  const titles = [];
  await new Promise((r) => setTimeout(r, 300));
  for (let attempt = 0; attempt < 10; attempt += 1) {
    const title = `${label}-live-${attempt}-${Date.now()}`;
    titles.push(title);
    const timer = new Promise((r) => setTimeout(() => r(null), 1000));
    await window.notifyUser(title);
    const event = await Promise.race([got, timer]);
    if (event) {
      received.stop();
      return { event, titles };
    }
  }
  received.stop();
  throw new Error(`${label}: no live notification after ${titles.length} mutations`);
}

const THREADS_QUERY = `
  query Threads($category: ID!, $first: Int!, $after: String) {
    forumThreads(where: {categoryId: {equals: $category}}, orderBy: [{slug: ASC}],
                 first: $first, after: $after) {
      totalCount
      edges { cursor node { id title slug } }
      pageInfo { hasNextPage endCursor }
    }
  }`;
const THREAD_QUERY = `query Thread($id: ID!) { forumThread(id: $id) { id title slug } }`;
const RENAME = `
  mutation Rename($id: ID!, $title: String!) {
    updateForumThread(id: $id, input: {title: $title}) { id title }
  }`;
const NOTIFICATIONS = `
  subscription Mine { myNotifications { op node { id title read userId } } }`;
const THREAD_FRAGMENT = `fragment T on ForumThread { id title slug }`;

async function apollo() {
  const out = results.apollo;
  const counter = { requests: 0 };
  const ws = wsClient({
    url: config.ws,
    connectionParams: { Authorization: auth },
    lazy: true,
  });
  const link = split(
    ({ query }) => {
      const def = getMainDefinition(query);
      return def.kind === 'OperationDefinition' && def.operation === 'subscription';
    },
    new GraphQLWsLink(ws),
    new HttpLink({ uri: config.http, headers: { authorization: auth }, fetch: countingFetch(counter) }),
  );
  // No keyFields anywhere: the default identifies every entity by `__typename` + `id`. No
  // possibleTypes either: the documents spread no fragments on interfaces or unions.
  const cache = new InMemoryCache({
    typePolicies: {
      Query: {
        fields: {
          forumThreads: relayStylePagination(['where', 'orderBy']),
          // A thread already in the cache is read from it, whichever query brought it.
          forumThread: (existing, { args, toReference }) =>
            existing || toReference({ __typename: 'ForumThread', id: args.id }),
        },
      },
    },
  });
  const client = new ApolloClient({ link, cache });

  // 1. First page, then the next with `after`: the field policy merges them.
  const vars = { category: config.category, first: 2 };
  const page1 = await client.query({ query: gql(THREADS_QUERY), variables: vars });
  const conn1 = page1.data.forumThreads;
  check(conn1.edges.length === 2 && conn1.pageInfo.hasNextPage, `apollo page 1: ${JSON.stringify(conn1)}`);
  check(conn1.totalCount === config.threads.length, `apollo totalCount ${conn1.totalCount}`);
  const watch = client.watchQuery({ query: gql(THREADS_QUERY), variables: vars });
  const merged = await new Promise((resolve, reject) => {
    const sub = watch.subscribe({
      next: ({ data }) => {
        if (data && data.forumThreads.edges.length === 4) {
          sub.unsubscribe();
          resolve(data.forumThreads);
        }
      },
      error: reject,
    });
    watch.fetchMore({ variables: { after: conn1.pageInfo.endCursor } }).catch(reject);
  });
  out.pages = merged.edges.map((e) => e.node.slug);
  check(
    JSON.stringify(out.pages) === JSON.stringify(config.threads.slice(0, 4).map((t) => t.slug)),
    `apollo merged list: ${JSON.stringify(out.pages)}`,
  );
  const afterPages = counter.requests;
  check(afterPages === 2, `apollo sent ${afterPages} requests for two pages`);
  log(`apollo: pages merged ${out.pages.join(', ')}`);

  // 2. Normalised: the thread is one cache entry under ForumThread:<id>, and a query for it
  // by id is answered from the cache.
  const first = merged.edges[0].node;
  const cacheId = cache.identify(first);
  check(cacheId === `ForumThread:${first.id}`, `apollo cache id ${cacheId}`);
  check(cache.extract()[cacheId], `apollo: no ${cacheId} in the cache`);
  const cached = await client.query({
    query: gql(THREAD_QUERY),
    variables: { id: first.id },
    fetchPolicy: 'cache-only',
  });
  check(cached.data.forumThread.title === first.title, `apollo cached thread ${JSON.stringify(cached.data)}`);
  check(counter.requests === afterPages, 'apollo: the cached thread went to the network');

  // 3. A mutation's result updates the entity: the list and the fragment read it with no
  // request.
  const title = `Apollo renamed ${Date.now()}`;
  const renamed = await client.mutate({
    mutation: gql(RENAME),
    variables: { id: first.id, title },
  });
  check(renamed.data.updateForumThread.title === title, 'apollo mutation result');
  const fragment = client.readFragment({ id: cacheId, fragment: gql(THREAD_FRAGMENT) });
  check(fragment && fragment.title === title, `apollo readFragment ${JSON.stringify(fragment)}`);
  const list = await client.query({
    query: gql(THREADS_QUERY),
    variables: vars,
    fetchPolicy: 'cache-only',
  });
  const inList = list.data.forumThreads.edges.find((e) => e.node.id === first.id);
  check(inList && inList.node.title === title, 'apollo: the list does not show the new title');
  check(list.data.forumThreads.edges.length === 4, 'apollo: the merged list was lost');
  check(counter.requests === afterPages + 1, `apollo sent ${counter.requests} requests in all`);
  out.renamed = { id: first.id, title, fragment };
  log(`apollo: renamed ${first.slug} to "${title}", read from the cache`);

  // 4. A live notification over GraphQLWsLink, written into the cache as well.
  const { event, titles } = await liveEvent('apollo', (resolve, reject) => {
    const sub = client.subscribe({ query: gql(NOTIFICATIONS) }).subscribe({
      next: ({ data, errors }) => (errors ? reject(new Error(JSON.stringify(errors))) : resolve(data.myNotifications)),
      error: reject,
    });
    return { stop: () => sub.unsubscribe() };
  });
  check(titles.includes(event.node.title) && event.op === 'CREATED', `apollo event ${JSON.stringify(event)}`);
  check(event.node.userId === config.userId, 'apollo: the event is for someone else');
  const note = cache.extract()[`Notification:${event.node.id}`];
  check(note && note.title === event.node.title, 'apollo: the notification is not in the cache');
  out.event = event;
  out.requests = counter.requests;
  log(`apollo: live ${event.op} "${event.node.title}"`);
  await ws.dispose();
}

async function urql() {
  const out = results.urql;
  const counter = { requests: 0 };
  const ws = wsClient({ url: config.ws, connectionParams: { Authorization: auth }, lazy: true });
  let fragmentAfterMutation = null;
  const cache = graphcache({
    // Types with no `id` are embedded in their parent rather than normalised.
    keys: {
      ForumThreadConnection: () => null,
      ForumThreadEdge: () => null,
      PageInfo: () => null,
      NotificationChange: () => null,
    },
    resolvers: {
      Query: {
        forumThreads: relayPagination(),
        forumThread: (_, args) => ({ __typename: 'ForumThread', id: args.id }),
      },
    },
    updates: {
      Mutation: {
        updateForumThread(result, args, c) {
          fragmentAfterMutation = c.readFragment(ugql(THREAD_FRAGMENT), { id: args.id });
        },
      },
    },
  });
  const client = new Client({
    url: config.http,
    fetch: countingFetch(counter),
    fetchOptions: { headers: { authorization: auth } },
    exchanges: [
      cache,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              return { unsubscribe: ws.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
  const ok = (res, what) => {
    if (res.error) throw new Error(`urql ${what}: ${res.error.message}`);
    return res.data;
  };

  // 1. Two pages; graphcache's relayPagination gives the merged list for either.
  const vars = { category: config.category, first: 2 };
  const conn1 = ok(await client.query(THREADS_QUERY, vars).toPromise(), 'page 1').forumThreads;
  check(conn1.edges.length === 2 && conn1.pageInfo.hasNextPage, `urql page 1: ${JSON.stringify(conn1)}`);
  const merged = ok(
    await client.query(THREADS_QUERY, { ...vars, after: conn1.pageInfo.endCursor }).toPromise(),
    'page 2',
  ).forumThreads;
  out.pages = merged.edges.map((e) => e.node.slug);
  check(
    JSON.stringify(out.pages) === JSON.stringify(config.threads.slice(0, 4).map((t) => t.slug)),
    `urql merged list: ${JSON.stringify(out.pages)}`,
  );
  const afterPages = counter.requests;
  check(afterPages === 2, `urql sent ${afterPages} requests for two pages`);
  log(`urql: pages merged ${out.pages.join(', ')}`);

  // 2. Normalised: the thread by id comes from the cache.
  const first = merged.edges[0].node;
  const cached = ok(
    await client.query(THREAD_QUERY, { id: first.id }, { requestPolicy: 'cache-only' }).toPromise(),
    'cached thread',
  );
  check(cached && cached.forumThread && cached.forumThread.title === first.title, `urql cached thread ${JSON.stringify(cached)}`);
  check(counter.requests === afterPages, 'urql: the cached thread went to the network');

  // 3. The mutation's result updates the entity in the cache.
  const title = `urql renamed ${Date.now()}`;
  const renamed = ok(await client.mutation(RENAME, { id: first.id, title }).toPromise(), 'mutation');
  check(renamed.updateForumThread.title === title, 'urql mutation result');
  check(fragmentAfterMutation && fragmentAfterMutation.title === title, `urql readFragment ${JSON.stringify(fragmentAfterMutation)}`);
  const list = ok(
    await client.query(THREADS_QUERY, vars, { requestPolicy: 'cache-only' }).toPromise(),
    'list from the cache',
  ).forumThreads;
  const inList = list.edges.find((e) => e.node.id === first.id);
  check(inList && inList.node.title === title, 'urql: the list does not show the new title');
  check(list.edges.length === 4, `urql: the merged list holds ${list.edges.length}`);
  check(counter.requests === afterPages + 1, `urql sent ${counter.requests} requests in all`);
  out.renamed = { id: first.id, title, fragment: fragmentAfterMutation };
  log(`urql: renamed ${first.slug} to "${title}", read from the cache`);

  // 4. A live notification through subscriptionExchange over graphql-ws.
  const { event, titles } = await liveEvent('urql', (resolve, reject) => {
    const sub = client.subscription(NOTIFICATIONS, {}).subscribe((res) => {
      if (res.error) reject(new Error(res.error.message));
      else if (res.data) resolve(res.data.myNotifications);
    });
    return { stop: () => sub.unsubscribe() };
  });
  check(titles.includes(event.node.title) && event.op === 'CREATED', `urql event ${JSON.stringify(event)}`);
  check(event.node.userId === config.userId, 'urql: the event is for someone else');
  out.event = event;
  out.requests = counter.requests;
  log(`urql: live ${event.op} "${event.node.title}"`);
  await ws.dispose();
}

(async () => {
  try {
    await apollo();
    await urql();
  } catch (err) {
    results.error = err && err.stack ? err.stack : String(err);
    console.error(`client test failed: ${results.error}`);
  } finally {
    window.done = true;
  }
})();
