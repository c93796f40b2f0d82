// The GraphQL client: queries over HTTP, subscriptions over WebSocket (graphql-ws), the
// bearer token on both. The API is this page's origin (adclick api serves both).
import { createClient as createWsClient } from 'graphql-ws';
import { Client, CombinedError, fetchExchange, subscriptionExchange } from 'urql';

const TOKEN_KEY = 'adclick.token';

// Kept for the browser session only: closing the tab forgets it.
export const storedToken = (): string => sessionStorage.getItem(TOKEN_KEY) ?? '';
export const storeToken = (token: string): void => {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
};

export function makeClient(token: string): Client {
  const authorization: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const wsUrl = new URL('/graphql', window.location.href);
  wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = createWsClient({
    url: wsUrl.toString(),
    connectionParams: authorization,
    lazy: true,
    retryAttempts: 1000,
  });
  return new Client({
    url: '/graphql',
    requestPolicy: 'network-only', // counts change every minute: never a stale cache
    fetchOptions: { headers: authorization },
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
}

export type Problem =
  | { kind: 'unauthenticated'; message: string }
  | { kind: 'forbidden'; message: string }
  | { kind: 'refused'; code: string; message: string }
  | { kind: 'server'; message: string };

// What went wrong, as the page tells it: the API's codes (docs/api.md) decide.
export function problemOf(error: CombinedError): Problem {
  const first = error.graphQLErrors[0];
  const code = (first?.extensions?.code as string | undefined) ?? '';
  if (code === 'UNAUTHENTICATED') return { kind: 'unauthenticated', message: first.message };
  if (code === 'FORBIDDEN') return { kind: 'forbidden', message: first.message };
  if (first && code && code !== 'INTERNAL_SERVER_ERROR') {
    return { kind: 'refused', code, message: first.message };
  }
  return { kind: 'server', message: first?.message ?? error.networkError?.message ?? error.message };
}
