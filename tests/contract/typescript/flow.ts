// The whole flow through openapi-fetch, typed by openapi-typescript from /openapi.json.
//
// tests/contract/test_typescript_client.py generates schema.d.ts from the live document next to
// this file, type-checks both with `tsc --strict`, then runs the result with node:
//   node out/flow.js <gateway url> <admin email> <admin password> <viewer email> <viewer password>
// One line per check; the first that fails ends the run with exit code 1.
import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema.js';

type Schemas = components['schemas'];

const [url, adminUser, adminPassword, viewerUser, viewerPassword] = process.argv.slice(2);
if (!url || !adminUser || !adminPassword || !viewerUser || !viewerPassword) {
  throw new Error('usage: flow.js <url> <admin> <password> <viewer> <password>');
}
let checks = 0;

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    console.log(`FAILED: ${what}`);
    process.exit(1);
  }
  checks += 1;
  console.log(`ok ${checks}: ${what}`);
}

function bearer(token: string): Middleware {
  return {
    onRequest({ request }) {
      request.headers.set('Authorization', `Bearer ${token}`);
      return request;
    },
  };
}

const anonymous = createClient<paths>({ baseUrl: url });

async function logIn(username: string, password: string): Promise<Schemas['TokenResponse']> {
  const { data, error } = await anonymous.POST('/auth/login', { body: { username, password } });
  check(data !== undefined && error === undefined, `login as ${username}`);
  check(data.token_type === 'Bearer' && data.expires_in > 0, 'a bearer token');
  return data;
}

function clientFor(token: string) {
  const client = createClient<paths>({ baseUrl: url });
  client.use(bearer(token));
  return client;
}

const wrong = await anonymous.POST('/auth/login', {
  body: { username: adminUser, password: 'Not-The-Passw0rd!' },
});
check(wrong.response.status === 401, 'a wrong password is 401');
check(wrong.error?.error === 'invalid_grant', 'typed invalid_grant');

const tokens = await logIn(adminUser, adminPassword);
const admin = clientFor(tokens.access_token);
const me = await admin.GET('/auth/me');
check(me.data?.permissions.includes('create:venues') === true, 'the admin may create venues');

const run = Math.random().toString(16).slice(2, 10);
const created: Schemas['VenueOut'][] = [];
let body: Schemas['VenueCreate'] | undefined;
for (const n of [0, 1, 2]) {
  body = {
    name: `Typed Hall ${run} ${n}`,
    address: `${n} Generated Street`,
    city: 'Berlin',
    country: 'DE',
    timezone: 'Europe/Berlin',
    capacity: 100 + n,
  };
  const answer = await admin.POST('/venues', { body });
  check(answer.data !== undefined, `create venue ${n}`);
  created.push(answer.data);
  check(answer.response.headers.get('ETag') === '"1"', "a new venue's ETag");
  check(answer.response.headers.get('Location') === `/venues/${answer.data.id}`, 'its Location');
}
check(body !== undefined, 'a body');
const again = await admin.POST('/venues', { body });
check(again.response.status === 409 && again.error?.error === 'conflict', 'typed 409');

const first = created[0];
check(first !== undefined, 'the first venue');
const path = { venue_id: first.id };
const read = await admin.GET('/venues/{venue_id}', { params: { path } });
check(read.data?.name === first.name, 'the venue read back');
const etag = read.response.headers.get('ETag') ?? '';

const mergePatch = { 'Content-Type': 'application/merge-patch+json' };
const stale = await admin.PATCH('/venues/{venue_id}', {
  params: { path, header: { 'If-Match': '"99"' } },
  body: { capacity: 500 },
  headers: mergePatch,
});
check(stale.error?.error === 'precondition_failed', 'typed 412 for a stale If-Match');

// the document requires If-Match: leaving it out does not type-check, so the 428 a client that
// forgets it gets is asked for outside the types
const bare = await fetch(`${url}/venues/${first.id}`, {
  method: 'PATCH',
  headers: { ...mergePatch, Authorization: `Bearer ${tokens.access_token}` },
  body: JSON.stringify({ capacity: 500 }),
});
const required = (await bare.json()) as Schemas['Error428PreconditionRequired'];
check(bare.status === 428 && required.error === 'precondition_required', 'no If-Match: 428');

const changed = await admin.PATCH('/venues/{venue_id}', {
  params: { path, header: { 'If-Match': etag } },
  body: { capacity: 500 },
  headers: mergePatch,
});
check(changed.data?.capacity === 500, 'a change at the ETag');
check(changed.response.headers.get('ETag') === '"2"', 'the ETag moved on');

const names: string[] = [];
let cursor: string | undefined;
let pages = 0;
for (;;) {
  const page = await admin.GET('/venues', {
    params: { query: { q: `Typed Hall ${run}`, limit: 2, ...(cursor ? { cursor } : {}) } },
  });
  check(page.data !== undefined, `page ${pages + 1}`);
  pages += 1;
  names.push(...page.data.items.map((venue) => venue.name));
  if (page.data.next_cursor === null) {
    check(page.data.next === null, 'the last page has no next link');
    break;
  }
  cursor = page.data.next_cursor;
}
check(
  pages === 2 && names.join('|') === created.map((venue) => venue.name).join('|'),
  `every venue, in order: ${names.join(', ')}`,
);

const tooMany = await admin.GET('/venues', { params: { query: { limit: 1000 } } });
const invalid = tooMany.error;
check(tooMany.response.status === 422 && invalid?.error === 'invalid_request', 'typed 422');
check(
  invalid !== undefined && 'details' in invalid && invalid.details?.[0]?.loc.join('.') === 'query.limit',
  'details name the field',
);

const viewer = clientFor((await logIn(viewerUser, viewerPassword)).access_token);
const denied = await viewer.POST('/venues', { body });
check(denied.error?.error === 'insufficient_scope', 'typed 403: a viewer may not create venues');

for (const venue of created) {
  const version = venue === first ? '"2"' : '"1"';
  const gone = await admin.DELETE('/venues/{venue_id}', {
    params: { path: { venue_id: venue.id }, header: { 'If-Match': version } },
  });
  check(gone.response.status === 204, `delete ${venue.name} at its ETag`);
}
const missing = await admin.GET('/venues/{venue_id}', { params: { path } });
check(missing.error?.error === 'not_found', 'typed 404 for a deleted venue');

const renewed = await admin.POST('/auth/refresh');
check(renewed.data !== undefined && renewed.data.access_token !== tokens.access_token, 'refresh');
const fresh = clientFor(renewed.data.access_token);
const ended = await fresh.POST('/auth/logout');
check(ended.response.status === 204, 'logout');
const after = await fresh.GET('/auth/me');
check(after.error?.error === 'invalid_token', 'typed 401 once logged out');
console.log(`all ${checks} checks passed`);
