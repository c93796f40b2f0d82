// The GraphQL-over-HTTP audit suite of graphql-http, against a running adclick API.
// Usage: node scripts/graphql-http-audit.mjs http://127.0.0.1:58080/graphql [token]
// Prints one JSON line per audit ({status, id, name, reason}); exits 1 if any is not ok.
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);
if (!url) {
  console.error('usage: graphql-http-audit.mjs <graphql url> [bearer token]');
  process.exit(2);
}
const fetchWithToken = (input, init = {}) => {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
const results = await auditServer({ url, fetchFn: fetchWithToken });
for (const result of results) {
  const reason = result.status === 'ok' ? undefined : result.reason;
  console.log(JSON.stringify({ status: result.status, id: result.id, name: result.name, reason }));
}
process.exit(results.every((result) => result.status === 'ok') ? 0 : 1);
