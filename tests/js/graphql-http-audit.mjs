// Runs graphql-http's server audit against a running gateway and prints the results as JSON.
// usage: node graphql-http-audit.mjs <url> <bearer token>
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url || !token) {
  console.error('usage: node graphql-http-audit.mjs <url> <token>');
  process.exit(2);
}

// Every request carries the credential, as a real client would.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers || {});
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const results = await auditServer({ url, fetchFn });
const out = [];
for (const r of results) {
  const item = { id: r.id, name: r.name, status: r.status };
  if (r.status !== 'ok') {
    item.reason = r.reason;
    try {
      item.response = await r.response.text();
      item.httpStatus = r.response.status;
    } catch {
      // the body may have been read by the audit already
    }
  }
  out.push(item);
}
console.log(JSON.stringify(out));
